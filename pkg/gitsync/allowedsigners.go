package gitsync

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// allowedSigner is one line of an allowed_signers file (see ssh-keygen(1),
// ALLOWED SIGNERS).
type allowedSigner struct {
	principals  string // as written, comma-separated patterns
	namespaces  []string
	validAfter  time.Time
	validBefore time.Time
	certAuth    bool
	key         ssh.PublicKey
}

// allows reports whether the entry permits a signature in namespace made
// at time at.
func (a allowedSigner) allows(namespace string, at time.Time) bool {
	if a.certAuth {
		return false // certificates are not supported; never match
	}
	if len(a.namespaces) > 0 && !matchAny(a.namespaces, namespace) {
		return false
	}
	if !a.validAfter.IsZero() && at.Before(a.validAfter) {
		return false
	}
	if !a.validBefore.IsZero() && !at.Before(a.validBefore) {
		return false
	}
	return true
}

// matchAny reports whether s matches one of the patterns ('*' and '?'
// wildcards, as ssh's match_pattern).
func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if matchPattern(p, s) {
			return true
		}
	}
	return false
}

func matchPattern(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if matchPattern(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}

// readAllowedSigners parses an allowed_signers file.
func readAllowedSigners(path string) ([]allowedSigner, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading allowed signers: %w", err)
	}
	return parseAllowedSigners(b, path)
}

func parseAllowedSigners(b []byte, name string) ([]allowedSigner, error) {
	var out []allowedSigner
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		a, err := parseAllowedSigner(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		out = append(out, a)
	}
	return out, sc.Err()
}

// parseAllowedSigner parses "principals [options] keytype base64 [comment]".
func parseAllowedSigner(line string) (allowedSigner, error) {
	fields := splitQuoted(line)
	if len(fields) < 3 {
		return allowedSigner{}, fmt.Errorf("want principals, key type and key")
	}
	a := allowedSigner{principals: unquote(fields[0])}
	rest := fields[1:]
	if !isKeyType(rest[0]) {
		if err := a.parseOptions(rest[0]); err != nil {
			return allowedSigner{}, err
		}
		rest = rest[1:]
	}
	if len(rest) < 2 {
		return allowedSigner{}, fmt.Errorf("missing key")
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rest[0] + " " + rest[1]))
	if err != nil {
		return allowedSigner{}, fmt.Errorf("parsing key: %w", err)
	}
	a.key = key
	return a, nil
}

func isKeyType(s string) bool {
	for _, p := range []string{"ssh-", "ecdsa-", "sk-", "rsa-"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// parseOptions parses a comma-separated option list; values may be quoted.
func (a *allowedSigner) parseOptions(s string) error {
	for _, opt := range splitOptions(s) {
		name, value, _ := strings.Cut(opt, "=")
		value = unquote(value)
		var err error
		switch strings.ToLower(name) {
		case "cert-authority":
			a.certAuth = true
		case "namespaces":
			a.namespaces = strings.Split(value, ",")
		case "valid-after":
			a.validAfter, err = parseSignerTime(value)
		case "valid-before":
			a.validBefore, err = parseSignerTime(value)
		default:
			err = fmt.Errorf("unknown option %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseSignerTime parses YYYYMMDD[HHMM[SS]] with an optional trailing Z
// (UTC); without Z the time is local, as in ssh-keygen.
func parseSignerTime(s string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		s, loc = s[:len(s)-1], time.UTC
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(s)]
	if !ok {
		return time.Time{}, fmt.Errorf("invalid time %q", s)
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time %q", s)
	}
	return t, nil
}

// splitQuoted splits on blanks outside double quotes.
func splitQuoted(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case (r == ' ' || r == '\t') && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// splitOptions splits on commas outside double quotes.
func splitOptions(s string) []string {
	var out []string
	start, quoted := 0, false
	for i, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
