// Package s3url is what the agent knows of an S3 fleet cache without an
// S3 client: it reads Nix's s3:// store URLs, names a path's narinfo
// object, and defines the JSON the avalanche-s3 helper prints. The daemon
// imports it; only avalanche-s3 links minio-go (through pkg/s3cache), so
// the resident binary on every host stays small.
package s3url

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Location is where a cache lives, as Nix's s3:// store URL says it:
// s3://BUCKET?endpoint=HOST[:PORT]&region=R&scheme=https|http&profile=P.
type Location struct {
	Bucket, Endpoint, Region, Profile string
	// Insecure is scheme=http: no TLS to the endpoint.
	Insecure bool
}

// Parse reads a Nix s3:// store URL. The endpoint is required (the
// fleet's cache is not on AWS); region defaults to us-east-1 and the
// credentials profile to "default", as in Nix.
func Parse(raw string) (Location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Location{}, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return Location{}, fmt.Errorf("%q is not s3://BUCKET?endpoint=…", raw)
	}
	q := u.Query()
	l := Location{Bucket: u.Host, Endpoint: q.Get("endpoint"), Region: q.Get("region"), Profile: q.Get("profile")}
	if l.Endpoint == "" || strings.Contains(l.Endpoint, "/") {
		return Location{}, fmt.Errorf("%q needs endpoint=HOST[:PORT] (no scheme; add scheme=http for plain HTTP)", raw)
	}
	switch q.Get("scheme") {
	case "", "https":
	case "http":
		l.Insecure = true
	default:
		return Location{}, fmt.Errorf("%q: scheme must be https or http", raw)
	}
	if l.Region == "" {
		l.Region = "us-east-1"
	}
	if l.Profile == "" {
		l.Profile = "default"
	}
	return l, nil
}

// NarinfoKey is the object holding the narinfo of a store path.
func NarinfoKey(storePath string) string {
	base := filepath.Base(storePath)
	hash, _, _ := strings.Cut(base, "-")
	return hash + ".narinfo"
}

// Missing is what `avalanche-s3 missing` prints: of the store paths it was
// given, those the bucket does not hold whole (in the order given), and
// the narinfo of each path it holds.
type Missing struct {
	Missing  []string          `json:"missing"`
	Narinfos map[string]string `json:"narinfos"`
}
