package config

import (
	"strings"
	"testing"
)

// TestTokenOverHTTP: a token only crosses the network encrypted; plain
// http is accepted for a loopback host with the explicit opt-in alone.
func TestTokenOverHTTP(t *testing.T) {
	tests := []struct {
		name    string
		repo    string // JSON of the repository object
		wantErr []string
	}{
		{"https with token", `{"url":"https://git.example/a.git","tokenFile":"/t"}`, nil},
		{"http without token", `{"url":"http://git.example/a.git"}`, nil},
		{"http with token", `{"url":"http://git.example/a.git","tokenFile":"/t"}`,
			[]string{"repository.tokenFile", `"http://git.example/a.git" is plain http`, "repository.allowInsecureHTTP"}},
		{"http loopback with token, no opt-in", `{"url":"http://127.0.0.1:3000/a.git","tokenFile":"/t"}`,
			[]string{"repository.tokenFile", "plain http"}},
		{"HTTP scheme in capitals", `{"url":"HTTP://git.example/a.git","tokenFile":"/t"}`, []string{"plain http"}},
		{"opt-in, remote host", `{"url":"http://git.example/a.git","tokenFile":"/t","allowInsecureHTTP":true}`,
			[]string{"repository.allowInsecureHTTP only covers a loopback host", `"git.example"`}},
		{"opt-in, host named like loopback", `{"url":"http://127.0.0.1.nip.io/a.git","tokenFile":"/t","allowInsecureHTTP":true}`,
			[]string{"only covers a loopback host"}},
		{"opt-in, private address", `{"url":"http://10.0.0.1/a.git","tokenFile":"/t","allowInsecureHTTP":true}`,
			[]string{"only covers a loopback host"}},
		{"opt-in, 127.0.0.1", `{"url":"http://127.0.0.1:3000/a.git","tokenFile":"/t","allowInsecureHTTP":true}`, nil},
		{"opt-in, 127.1.2.3", `{"url":"http://127.1.2.3/a.git","tokenFile":"/t","allowInsecureHTTP":true}`, nil},
		{"opt-in, ::1", `{"url":"http://[::1]:3000/a.git","tokenFile":"/t","allowInsecureHTTP":true}`, nil},
		{"opt-in, localhost", `{"url":"http://localhost:3000/a.git","tokenFile":"/t","allowInsecureHTTP":true}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(`{"version":1,"hostname":"h","repository":` + tt.repo + `}`))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Parse(%s) = %v; want nil", tt.repo, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%s) = nil; want an error containing %q", tt.repo, tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Parse(%s) = %v; want it to contain %q", tt.repo, err, want)
				}
			}
		})
	}
}
