package k8s

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// egressRule opens one TCP port to some address ranges.
type egressRule struct {
	port int
	to   []ipBlock
}

// ipBlock is a NetworkPolicy ipBlock: cidr minus the except ranges.
type ipBlock struct {
	cidr   string
	except []string
}

// Ranges an opening for a host name leaves out: private networks (where
// the cluster's pods, Services and nodes usually are), carrier-grade NAT,
// link-local (the clouds' metadata service at 169.254.169.254) and
// loopback; for IPv6, unique-local and link-local addresses.
var (
	exceptV4 = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"}
	exceptV6 = []string{"fc00::/7", "fe80::/10"}
	excepted = func() []netip.Prefix {
		var out []netip.Prefix
		for _, c := range append(slices.Clone(exceptV4), exceptV6...) {
			out = append(out, netip.MustParsePrefix(c))
		}
		return out
	}()
)

// anywhere is every address but the excepted ranges, for host names,
// which a NetworkPolicy cannot name.
var anywhere = []ipBlock{{"0.0.0.0/0", exceptV4}, {"::/0", exceptV6}}

// egressRules turns the node runtime's allow-list (host:port) into
// policy rules, one per port in ascending order. Addresses on a port are
// merged into the fewest CIDRs covering exactly them. A host name on a
// port opens it to anywhere but the private, link-local and loopback
// ranges (see anywhere); an address given on that port which falls in
// those ranges is opened by its own CIDR besides. Loopback is left out:
// no policy applies to it. Entries that do not parse are dropped, as the
// runtime would not reach them either.
func egressRules(allow []string) []egressRule {
	type portSet struct {
		named bool
		addrs []netip.Addr
	}
	byPort := map[int]*portSet{}
	for _, hp := range allow {
		host, p, err := net.SplitHostPort(hp)
		if err != nil {
			continue
		}
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 || isLoopback(hp) {
			continue
		}
		s := byPort[port]
		if s == nil {
			s = &portSet{}
			byPort[port] = s
		}
		addr, err := netip.ParseAddr(host)
		if err != nil {
			s.named = true
		} else {
			s.addrs = append(s.addrs, addr.Unmap().WithZone(""))
		}
	}
	var rules []egressRule
	for _, port := range slices.Sorted(maps.Keys(byPort)) {
		s := byPort[port]
		var to []ipBlock
		addrs := s.addrs
		if s.named {
			to = slices.Clone(anywhere)
			// Addresses outside the excepted ranges are covered already.
			addrs = slices.DeleteFunc(slices.Clone(addrs), func(a netip.Addr) bool { return !isExcepted(a) })
		}
		for _, p := range coverExactly(addrs) {
			to = append(to, ipBlock{cidr: p.String()})
		}
		if len(to) > 0 {
			rules = append(rules, egressRule{port: port, to: to})
		}
	}
	return rules
}

// isExcepted reports whether anywhere leaves a out.
func isExcepted(a netip.Addr) bool {
	return slices.ContainsFunc(excepted, func(p netip.Prefix) bool { return p.Contains(a) })
}

// isLoopback tells the allow-list's sidecar entries (localhost:port),
// which no policy governs.
func isLoopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(host)
	return host == "localhost" || err == nil && addr.IsLoopback()
}

// coverExactly returns the fewest prefixes whose union is exactly addrs:
// runs of consecutive addresses are cut into the largest aligned blocks.
func coverExactly(addrs []netip.Addr) []netip.Prefix {
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	addrs = slices.Compact(addrs)
	var out []netip.Prefix
	for i := 0; i < len(addrs); {
		// The run addrs[i..j] holds consecutive addresses of one family.
		j := i
		for j+1 < len(addrs) && addrs[j+1] == addrs[j].Next() {
			j++
		}
		out = append(out, cutRange(addrs[i], addrs[j])...)
		i = j + 1
	}
	return out
}

// cutRange covers [lo, hi] with aligned prefixes, largest first.
func cutRange(lo, hi netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for {
		bits := lo.BitLen()
		// The shortest prefix that starts at lo and ends within hi.
		best := netip.PrefixFrom(lo, bits)
		for l := bits - 1; l >= 0; l-- {
			p := netip.PrefixFrom(lo, l)
			if p.Masked().Addr() != lo || lastAddr(p).Compare(hi) > 0 {
				break
			}
			best = p
		}
		out = append(out, best)
		last := lastAddr(best)
		if last.Compare(hi) >= 0 || !last.Next().IsValid() {
			return out
		}
		lo = last.Next()
	}
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
