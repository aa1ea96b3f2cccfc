package objectstore

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// policy is an enclave bucket's policy: for each granted tentacle, one
// statement for its objects and one for listing them. Statements are
// found by their principal (the tentacle's access key); the bucket is the
// enclave's alone, so every statement in it is one Grant wrote.
type policy struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string               `json:"Sid,omitempty"`
	Effect    string               `json:"Effect"`
	Principal principal            `json:"Principal"`
	Action    stringList           `json:"Action"`
	Resource  stringList           `json:"Resource"`
	Condition map[string]condition `json:"Condition,omitempty"`
}

type principal struct {
	AWS stringList `json:"AWS"`
}

type condition map[string]stringList

// stringList reads a JSON string or array of strings, the two forms
// policies use, and writes an array.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

// objectActions are what a tentacle may do to the objects under its
// prefix. PutObject covers multipart uploads' create, parts and complete;
// GetObject covers HEAD.
var objectActions = stringList{
	"s3:GetObject",
	"s3:PutObject",
	"s3:DeleteObject",
	"s3:AbortMultipartUpload",
	"s3:ListMultipartUploadParts",
}

// statements are a tentacle's grant: its objects, and listing with a
// prefix inside its own (versitygw evaluates the s3:prefix condition, so
// a listing without one, or with another tentacle's, is refused).
func statements(bucket, key, tentacle string) []statement {
	prefix := tentacle + "/"
	who := principal{AWS: stringList{key}}
	return []statement{
		{
			Sid:       sid(tentacle, "objects"),
			Effect:    "Allow",
			Principal: who,
			Action:    objectActions,
			Resource:  stringList{"arn:aws:s3:::" + bucket + "/" + prefix + "*"},
		},
		{
			Sid:       sid(tentacle, "list"),
			Effect:    "Allow",
			Principal: who,
			Action:    stringList{"s3:ListBucket"},
			Resource:  stringList{"arn:aws:s3:::" + bucket},
			Condition: map[string]condition{"StringLike": {"s3:prefix": {prefix + "*"}}},
		},
	}
}

// sid names a statement for people reading the policy. AWS wants it
// alphanumeric, so the tentacle's dashes go.
func sid(tentacle, what string) string {
	return strings.ReplaceAll(tentacle, "-", "") + strings.ToUpper(what[:1]) + what[1:]
}

func parsePolicy(doc string) (policy, error) {
	var p policy
	if strings.TrimSpace(doc) == "" {
		return policy{Version: "2012-10-17"}, nil
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return policy{}, fmt.Errorf("reading the bucket policy: %w", err)
	}
	return p, nil
}

func (p policy) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// owner is the access key a statement grants to, or "" when it names
// several (none that Grant writes).
func (s statement) owner() string {
	if len(s.Principal.AWS) != 1 {
		return ""
	}
	return s.Principal.AWS[0]
}

// grant puts the tentacle's statements in place of any it had, and says
// whether that changed the policy.
func (p *policy) grant(key string, st []statement) bool {
	before := p.String()
	p.revoke(key)
	p.Statement = append(p.Statement, st...)
	// Sorted, so the same grants write the same document in any order.
	slices.SortStableFunc(p.Statement, func(a, b statement) int {
		return strings.Compare(a.owner()+"\x00"+a.Sid, b.owner()+"\x00"+b.Sid)
	})
	return p.String() != before
}

// revoke removes the key's statements, and says whether there were any.
func (p *policy) revoke(key string) bool {
	n := len(p.Statement)
	p.Statement = slices.DeleteFunc(p.Statement, func(s statement) bool { return s.owner() == key })
	return len(p.Statement) != n
}
