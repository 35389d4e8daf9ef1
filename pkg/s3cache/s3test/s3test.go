// Package s3test runs a real S3 server for tests: versitygw (posix
// backend), built by the repository's .ci/versitygw, with its
// static-website endpoint serving one bucket anonymously over HTTP, the
// way Garage's web endpoint serves the fleet cache on possum.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"
)

// Bucket is the one bucket a Server serves on its website endpoint: its
// name is the website's host name ("localhost"), as a Garage bucket whose
// alias is a domain name.
const Bucket = "localhost"

const (
	accessKey = "avalanche-test"
	secretKey = "avalanche-test-secret"
	region    = "us-east-1"
)

// Server is a running versitygw.
type Server struct {
	// Endpoint is the S3 API's host:port; WebsiteURL the anonymous
	// read-only endpoint serving Bucket, a Nix HTTP binary cache URL.
	Endpoint, WebsiteURL string
	// CacheURL is Bucket as a Nix s3:// store URL; CredentialsFile holds
	// its keys in the AWS shared-credentials format.
	CacheURL, CredentialsFile string
	// Client is an S3 client with the server's root keys.
	Client *minio.Client
}

// Start runs versitygw on loopback ports with its root in t.TempDir(),
// creates Bucket, publishes it on the website endpoint with an anonymous
// read policy, and stops the server when t ends.
func Start(t *testing.T) *Server {
	t.Helper()
	bin := Binary(t)
	s3Port, webPort := freePort(t), freePort(t)
	s := &Server{Endpoint: "127.0.0.1:" + s3Port, WebsiteURL: "http://" + Bucket + ":" + webPort}
	s.CacheURL = "s3://" + Bucket + "?endpoint=" + s.Endpoint + "&scheme=http&region=" + region
	s.CredentialsFile = filepath.Join(t.TempDir(), "credentials")
	creds := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", accessKey, secretKey)
	if err := os.WriteFile(s.CredentialsFile, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--access", accessKey, "--secret", secretKey, "--region", region, "--port", s.Endpoint,
		"--website", "127.0.0.1:"+webPort, "--quiet", "posix", t.TempDir())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var err error
	s.Client, err = minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""),
		Region: region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, &out)
	s.makeBucket(t)
	return s
}

func (s *Server) waitReady(t *testing.T, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.Client.ListBuckets(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw on %s not ready after 30s: %v\n%s", s.Endpoint, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// makeBucket creates Bucket, gives it a website configuration and lets
// anyone read its objects (versitygw's website endpoint serves only what
// the bucket's policy makes public).
func (s *Server) makeBucket(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := s.Client.MakeBucket(ctx, Bucket, minio.MakeBucketOptions{Region: region}); err != nil {
		t.Fatalf("MakeBucket(%s) = %v", Bucket, err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",` +
		`"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::` + Bucket + `/*"]}]}`
	if err := s.Client.SetBucketPolicy(ctx, Bucket, policy); err != nil {
		t.Fatalf("SetBucketPolicy(%s) = %v", Bucket, err)
	}
	website := `<WebsiteConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
		`<IndexDocument><Suffix>index.html</Suffix></IndexDocument></WebsiteConfiguration>`
	s.signed(t, http.MethodPut, "/"+Bucket+"?website", website)
}

// signed sends a request minio-go has no method for, signed with the root keys.
func (s *Server) signed(t *testing.T, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.Endpoint+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	req.ContentLength = int64(len(body))
	req = signer.SignV4(*req, accessKey, secretKey, "", region)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		t.Fatalf("%s %s = %s: %s", method, path, resp.Status, b.String())
	}
}

// Remove deletes key from Bucket, as a bucket that loses an object.
func (s *Server) Remove(t *testing.T, key string) {
	t.Helper()
	if err := s.Client.RemoveObject(context.Background(), Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("RemoveObject(%s) = %v", key, err)
	}
}

// Has reports whether Bucket holds key.
func (s *Server) Has(t *testing.T, key string) bool {
	t.Helper()
	_, err := s.Client.StatObject(context.Background(), Bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return true
	}
	if minio.ToErrorResponse(err).Code == "NoSuchKey" || minio.ToErrorResponse(err).Code == "NotFound" {
		return false
	}
	t.Fatalf("StatObject(%s) = %v", key, err)
	return false
}

// Binary returns versitygw: $AVALANCHE_VERSITYGW, or what the repository's
// .ci/versitygw prints (it builds it when missing, a few minutes).
func Binary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AVALANCHE_VERSITYGW"); p != "" {
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		script := filepath.Join(d, ".ci/versitygw")
		if _, err := os.Stat(script); err == nil {
			var stderr bytes.Buffer
			cmd := exec.Command(script)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s (builds the S3 server versitygw): %v: %s", script, err, stderr.String())
			}
			return strings.TrimSpace(string(out))
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	t.Fatal("no .ci/versitygw above " + wd + " and AVALANCHE_VERSITYGW unset: cannot find the S3 server versitygw")
	return ""
}

// HelperPackage is the import path of the avalanche-s3 command.
const HelperPackage = "github.com/avalanche-fleet/avalanche/agent/cmd/avalanche-s3"

// Helper builds avalanche-s3 into t.TempDir() and returns its path. The
// build runs in the calling package's directory, which must lie inside
// the avalanche module.
func Helper(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "avalanche-s3")
	gotool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gotool); err != nil {
		gotool = "go"
	}
	argv := []string{gotool, "build", "-o", out, HelperPackage}
	if b, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", argv, err, b)
	}
	return out
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// Get returns the content of key in Bucket.
func (s *Server) Get(t *testing.T, key string) string {
	t.Helper()
	obj, err := s.Client.GetObject(context.Background(), Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("GetObject(%s) = %v", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return string(b)
}

// Modified returns when key in Bucket was last written.
func (s *Server) Modified(t *testing.T, key string) time.Time {
	t.Helper()
	info, err := s.Client.StatObject(context.Background(), Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatalf("StatObject(%s) = %v", key, err)
	}
	return info.LastModified
}
