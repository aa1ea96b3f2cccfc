package objectstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/minio/minio-go/v7/pkg/signer"
)

// admin speaks versitygw's admin API: its users live there, not in S3.
// Requests are SigV4-signed with the root key, like S3 ones.
type admin struct {
	base   string // scheme://host:port
	region string
	access string
	secret string
	http   *http.Client
}

// The admin API's user roles. A tentacle is a plain user: it cannot make
// buckets, and reaches its enclave's bucket only through the policy.
const roleUser = "user"

// adminError is an error the admin API answered with.
type adminError struct {
	Status  int
	Code    string
	Message string
}

func (e *adminError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message)
	}
	return fmt.Sprintf("%s (%d)", e.Code, e.Status)
}

func adminCode(err error) string {
	var ae *adminError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// account is the admin API's user, as it reads it. Secret is only ever
// sent; it is never logged or put in an error.
type account struct {
	XMLName xml.Name `xml:"Account"`
	Access  string   `xml:"Access"`
	Secret  string   `xml:"Secret"`
	Role    string   `xml:"Role"`
}

type mutableProps struct {
	XMLName xml.Name `xml:"MutableProps"`
	Secret  string   `xml:"Secret"`
	Role    string   `xml:"Role"`
}

// putUser makes the user, or sets its secret and role if it exists, so a
// changed platform key reaches users made before it.
func (a *admin) putUser(ctx context.Context, access, secret string) error {
	body, err := xml.Marshal(account{Access: access, Secret: secret, Role: roleUser})
	if err != nil {
		return err
	}
	err = a.do(ctx, "/create-user", nil, body, nil)
	if adminCode(err) != "XAdminUserExists" {
		return err
	}
	body, err = xml.Marshal(mutableProps{Secret: secret, Role: roleUser})
	if err != nil {
		return err
	}
	return a.do(ctx, "/update-user", url.Values{"access": {access}}, body, nil)
}

// deleteUser deletes the user; one that is not there is fine.
func (a *admin) deleteUser(ctx context.Context, access string) error {
	err := a.do(ctx, "/delete-user", url.Values{"access": {access}}, nil, nil)
	if adminCode(err) == "XAdminUserNotFound" {
		return nil
	}
	return err
}

// users lists every user's access key. The answer carries their secrets
// too; they are dropped as it is read.
func (a *admin) users(ctx context.Context) ([]string, error) {
	var res struct {
		Accounts []struct {
			Access string `xml:"Access"`
		} `xml:"Accounts"`
	}
	if err := a.do(ctx, "/list-users", nil, nil, &res); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(res.Accounts))
	for _, acc := range res.Accounts {
		keys = append(keys, acc.Access)
	}
	return keys, nil
}

// ping checks the admin API is there and takes the root key, with a
// request that changes nothing.
func (a *admin) ping(ctx context.Context) error {
	return a.do(ctx, "/list-buckets", nil, nil, nil)
}

// do sends one PATCH (every admin route is one) and decodes the XML answer
// into out when it is not nil.
func (a *admin) do(ctx context.Context, path string, q url.Values, body []byte, out any) error {
	u := a.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("admin %s: %w", path, err)
	}
	sum := sha256.Sum256(body)
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	req = signer.SignV4(*req, a.access, a.secret, "", a.region)
	resp, err := a.http.Do(req)
	if err != nil {
		// The request carries no secret in its URL, only the signature in
		// a header, so the transport's error is safe to pass on.
		return fmt.Errorf("admin %s: %w: %w", path, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin %s: reading the answer: %w", path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		_ = xml.Unmarshal(data, &e)
		if e.Code == "" {
			e.Code = http.StatusText(resp.StatusCode)
		}
		return fmt.Errorf("admin %s: %w", path, &adminError{Status: resp.StatusCode, Code: e.Code, Message: e.Message})
	}
	if out != nil {
		if err := xml.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin %s: reading the answer: %w", path, err)
		}
	}
	return nil
}
