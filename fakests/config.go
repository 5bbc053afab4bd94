package fakests

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Config is the set of AWS principals the fake knows: the YAML file of cmd/fakests, or built in
// Go by tests. Every list may be empty; principals can be added later with Server.AddUser and
// friends.
type Config struct {
	// Users are IAM users with a long-term access key (AKIA…).
	Users []User `json:"users,omitempty"`
	// Roles are IAM roles that AssumeRole can issue temporary credentials for.
	Roles []Role `json:"roles,omitempty"`
	// Sessions are fixed temporary credentials (ASIA… key and session token), e.g. the ones that
	// signed the tokens in internal/testenv/testdata.
	Sessions []Session `json:"sessions,omitempty"`
	// Instances are EC2 instances that DescribeInstances knows.
	Instances []Instance `json:"instances,omitempty"`
}

// User is an IAM user with one access key.
type User struct {
	// ARN is arn:<partition>:iam::<account>:user/<path/>name.
	ARN string `json:"arn"`
	// UserID is the unique ID GetCallerIdentity returns (AIDA…); derived from the ARN if empty.
	UserID string `json:"userId,omitempty"`
	// Account is the 12-digit account; optional, it must match the ARN's when set.
	Account         string `json:"account,omitempty"`
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

// Role is an IAM role and who may assume it.
type Role struct {
	// ARN is arn:<partition>:iam::<account>:role/<path/>name.
	ARN string `json:"arn"`
	// RoleID is the unique ID (AROA…); derived from the ARN if empty.
	RoleID string `json:"roleId,omitempty"`
	// Trust lists the principals that may assume the role: a caller ARN (an assumed-role
	// caller also matches by its role ARN), arn:<partition>:iam::<account>:root for every
	// principal of that account, or "*" for anyone.
	Trust []string `json:"trust"`
	// ExternalID, when set, must be sent by AssumeRole callers.
	ExternalID string `json:"externalId,omitempty"`
	// MaxSessionDuration bounds DurationSeconds (AWS: 1h to 12h; default 1h).
	MaxSessionDuration Duration `json:"maxSessionDuration,omitempty"`
}

// Session is a set of temporary credentials and the identity they belong to.
type Session struct {
	// ARN is usually arn:<partition>:sts::<account>:assumed-role/<role>/<session>.
	ARN string `json:"arn"`
	// UserID is the unique ID GetCallerIdentity returns (AROA…:<session> for an assumed
	// role); derived from the ARN if empty.
	UserID          string `json:"userId,omitempty"`
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	SessionToken    string `json:"sessionToken"`
	// Expiration is when the credentials expire (ExpiredToken after it); zero means never.
	Expiration time.Time `json:"expiration,omitzero"`
}

// Instance is an EC2 instance for DescribeInstances.
type Instance struct {
	InstanceID     string `json:"instanceId"`
	PrivateDNSName string `json:"privateDnsName"`
	// OwnerID is the account of the reservation; 123456789012 if empty.
	OwnerID string `json:"ownerId,omitempty"`
}

// Duration is a time.Duration written in YAML and JSON as "90s", "1h" (or a number of seconds).
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err := json.Unmarshal(b, &secs); err != nil {
			return fmt.Errorf("cannot parse duration %s: want a string like \"1m30s\" or seconds", b)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("cannot parse duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads a YAML (or JSON) config file; see ParseConfig.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("cannot read -config=%q: %w", path, err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("cannot parse -config=%q: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses a YAML (or JSON) config document strictly: unknown keys are errors.
// The principals themselves are checked by New.
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// arn is a parsed ARN.
type arn struct {
	partition, service, region, account, resource string
}

// parseARN splits and checks an ARN: known layout, 12-digit account, characters IAM allows.
func parseARN(s string) (arn, error) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] == "" || parts[5] == "" {
		return arn{}, fmt.Errorf("cannot parse ARN %q: want arn:<partition>:<service>:<region>:<account>:<resource>", s)
	}
	a := arn{partition: parts[1], service: parts[2], region: parts[3], account: parts[4], resource: parts[5]}
	if len(a.account) != 12 || !allDigits(a.account) {
		return arn{}, fmt.Errorf("cannot parse ARN %q: the account is not 12 digits", s)
	}
	for i := 0; i < len(s); i++ {
		if !arnChar(s[i]) {
			return arn{}, fmt.Errorf("cannot parse ARN %q: character %q is not allowed", s, s[i])
		}
	}
	return a, nil
}

func arnChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("+=,.@_-/:", c) >= 0
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkAccessKey checks the form AWS gives access key IDs: 16–128 upper-case alphanumerics.
func checkAccessKey(id, secret string) error {
	if len(id) < 16 || len(id) > 128 {
		return fmt.Errorf("cannot use access key ID %q: want 16 to 128 characters", id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return fmt.Errorf("cannot use access key ID %q: want upper-case letters and digits", id)
		}
	}
	if secret == "" {
		return fmt.Errorf("cannot use access key ID %q: the secret access key is empty", id)
	}
	return nil
}

// derivedID makes a stable unique ID (prefix + 17 characters) from an ARN, as IAM's IDs look.
func derivedID(prefix, arnText string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	sum := sha256.Sum256([]byte(arnText))
	b := []byte(prefix)
	for i := range 17 {
		b = append(b, alphabet[sum[i]&31])
	}
	return string(b)
}

// checkInstanceID accepts i- followed by 8 or 17 lower-case hex digits.
func checkInstanceID(id string) bool {
	h, ok := strings.CutPrefix(id, "i-")
	if !ok || (len(h) != 8 && len(h) != 17) {
		return false
	}
	_, err := strconv.ParseUint(h, 16, 64)
	if len(h) == 17 {
		_, err = strconv.ParseUint(h[1:], 16, 64)
		if h[0] < '0' || h[0] > 'f' || (h[0] > '9' && h[0] < 'a') {
			return false
		}
	}
	return err == nil && strings.ToLower(h) == h
}
