// Package s3cache keeps a Nix binary cache in an S3 bucket (possum's
// Garage): it uploads a closure's NARs and narinfos with an S3 client, so
// a Nix that cannot open s3:// stores (Debian's 2.8) can fill it too, and
// tells which paths of a closure the bucket does not hold whole.
//
// Nix writes the files: the paths the bucket lacks are copied into a local
// file:// binary cache first (seeded with the narinfos the bucket already
// has, so Nix skips those), then uploaded, every NAR before its narinfo.
// Hosts read the bucket anonymously over HTTP(S) (the S3 server's website
// endpoint) as a plain Nix binary cache; the narinfo signatures, not the
// transport, carry the trust.
package s3cache

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Location is where a cache lives, as Nix's s3:// store URL says it:
// s3://BUCKET?endpoint=HOST[:PORT]&region=R&scheme=https|http&profile=P.
type Location struct {
	Bucket, Endpoint, Region, Profile string
	// Insecure is scheme=http: no TLS to the endpoint.
	Insecure bool
}

// ParseURL reads a Nix s3:// store URL. The endpoint is required (the
// fleet's cache is not on AWS); region defaults to us-east-1 and the
// credentials profile to "default", as in Nix.
func ParseURL(raw string) (Location, error) {
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

// Bucket is an open cache bucket.
type Bucket struct {
	client *minio.Client
	name   string
}

// Open returns the bucket at l, authenticated with the keys of profile
// l.Profile in credentialsFile (the AWS shared-credentials format that
// NixOS's Nix also reads through AWS_SHARED_CREDENTIALS_FILE:
// "[default]", "aws_access_key_id = …", "aws_secret_access_key = …").
// It reads the file now, so a missing or empty one fails at start-up.
func Open(l Location, credentialsFile string) (*Bucket, error) {
	creds := credentials.NewFileAWSCredentials(credentialsFile, l.Profile)
	v, err := creds.Get()
	if err != nil {
		return nil, fmt.Errorf("reading S3 credentials %s: %w", credentialsFile, err)
	}
	if v.AccessKeyID == "" || v.SecretAccessKey == "" {
		return nil, fmt.Errorf("reading S3 credentials %s: profile [%s] lacks aws_access_key_id or aws_secret_access_key",
			credentialsFile, l.Profile)
	}
	client, err := minio.New(l.Endpoint, &minio.Options{Creds: creds, Secure: !l.Insecure, Region: l.Region,
		BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", l.Endpoint, err)
	}
	return &Bucket{client: client, name: l.Bucket}, nil
}

// NarinfoKey is the object holding the narinfo of a store path.
func NarinfoKey(storePath string) string {
	base := filepath.Base(storePath)
	hash, _, _ := strings.Cut(base, "-")
	return hash + ".narinfo"
}

// narURL returns the URL field of a narinfo: the NAR's object key.
func narURL(narinfo string) (string, error) {
	for line := range strings.Lines(narinfo) {
		if v, ok := strings.CutPrefix(line, "URL: "); ok {
			v = strings.TrimSpace(v)
			if v == "" || strings.HasPrefix(v, "/") || strings.Contains(v, "..") {
				return "", fmt.Errorf("narinfo URL %q is not a key in the bucket", v)
			}
			return v, nil
		}
	}
	return "", errors.New("narinfo has no URL")
}

// notFound reports an S3 error that says the object is not there.
func notFound(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NotFound":
		return true
	}
	return false
}
