// Package s3cache keeps a Nix binary cache in an S3 bucket (possum's
// Garage) with an S3 client (minio-go): it tells which paths the bucket
// does not hold whole and uploads what Nix wrote into a local file://
// binary cache, every NAR before its narinfo. Only the avalanche-s3
// helper links it; the builder in the daemon stages the NARs with Nix and
// runs the helper (pkg/s3cache/s3url is the part the daemon imports).
//
// Hosts read the bucket anonymously over HTTP(S) (the S3 server's website
// endpoint) as a plain Nix binary cache; the narinfo signatures, not the
// transport, carry the trust.
package s3cache

import (
	"errors"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/avalanche-fleet/avalanche/pkg/s3cache/s3url"
)

// Bucket is an open cache bucket.
type Bucket struct {
	client *minio.Client
	name   string
}

// Open returns the bucket at l, authenticated with the keys of profile
// l.Profile in credentialsFile (the AWS shared-credentials format that
// NixOS's Nix also reads through AWS_SHARED_CREDENTIALS_FILE:
// "[default]", "aws_access_key_id = …", "aws_secret_access_key = …").
// It reads the file now, so a missing or empty one fails before any request.
func Open(l s3url.Location, credentialsFile string) (*Bucket, error) {
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
