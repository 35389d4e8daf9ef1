package forgetest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest"
	"github.com/avalanche-fleet/avalanche/pkg/forge/giteatest"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// target is a forge the table runs against: the real Gitea or the fake.
type target struct {
	name, url, repo string
	token, readOnly string
}

// step is one request. Its path is below /api/v1; {repo}, {sha} (the
// case's own commit), {short} (its first 10 digits) and {unknown} (a
// commit the repository does not have) are replaced.
type step struct {
	method, path string
	// auth: "" (the write token as "token …"), "bearer" (the same as
	// "Bearer …"), "read" (the read-only token), "none", "wrong" (40 hex
	// digits no token has), "garbage".
	auth        string
	body        string
	contentType string // application/json when empty
	// keys, when set, are the only fields of the answer compared (a
	// commit's JSON, which the fake keeps short).
	keys []string
}

// answer is a response with what differs between two runs taken out:
// times become "<time>", the base URL "{base}", the creator its login,
// the repository its full name.
type answer struct {
	Request string
	Code    int
	Header  map[string]string
	Body    any
}

// compared are the headers the table compares.
var compared = []string{"Content-Type", "X-Total-Count", "Allow"}

func post(state, context string) step {
	return step{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}",
		body: fmt.Sprintf(`{"state":%q,"context":%q}`, state, context)}
}

func postBody(body string) step {
	return step{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}", body: body}
}

func combined(query string) step {
	p := "/repos/{repo}/commits/{sha}/status"
	if query != "" {
		p += "?" + query
	}
	return step{method: http.MethodGet, path: p}
}

func (tg target) do(t *testing.T, s step, sha string) answer {
	t.Helper()
	path := strings.NewReplacer("{repo}", tg.repo, "{sha}", sha, "{short}", sha[:10],
		"{unknown}", strings.Repeat("ab", 20)).Replace(s.path)
	req, err := http.NewRequest(s.method, tg.url+"/api/v1"+path, strings.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	if s.body != "" || s.contentType != "" {
		req.Header.Set("Content-Type", or(s.contentType, "application/json"))
	}
	switch s.auth {
	case "":
		req.Header.Set("Authorization", "token "+tg.token)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+tg.token)
	case "read":
		req.Header.Set("Authorization", "token "+tg.readOnly)
	case "wrong":
		req.Header.Set("Authorization", "token "+strings.Repeat("0f", 20))
	case "garbage":
		req.Header.Set("Authorization", "token not-a-token")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", s.method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{Request: s.method + " " + s.path + " auth=" + or(s.auth, "write"), Code: resp.StatusCode, Header: map[string]string{}}
	for _, h := range compared {
		// Every value, sorted: Gitea's router lists a 405's allowed
		// methods in no fixed order.
		vs := slices.Sorted(slices.Values(resp.Header.Values(h)))
		if v := strings.Join(vs, ", "); v != "" {
			a.Header[h] = v
		}
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.Body); err != nil {
			a.Body = "not JSON: " + string(raw)
		}
	}
	a.Body = tg.normalize(a.Body, "")
	if m, ok := a.Body.(map[string]any); ok && s.keys != nil {
		kept := map[string]any{}
		for _, k := range s.keys {
			kept[k] = m[k]
		}
		a.Body = kept
	}
	return a
}

// normalize rewrites what legitimately differs between two forges.
func (tg target) normalize(v any, key string) any {
	switch v := v.(type) {
	case map[string]any:
		switch key {
		case "creator":
			return map[string]any{"login": v["login"]}
		case "repository":
			return map[string]any{"full_name": v["full_name"]}
		}
		out := map[string]any{}
		for k, e := range v {
			out[k] = tg.normalize(e, k)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = tg.normalize(e, key)
		}
		return out
	case string:
		if key == "created_at" || key == "updated_at" {
			if _, err := time.Parse(time.RFC3339, v); err == nil {
				return "<time>"
			}
		}
		return strings.ReplaceAll(v, tg.url, "{base}")
	}
	return v
}

// TestConformance runs one table of requests against a real Gitea and the
// fake and wants the same answers. Each case works on its own commit.
func TestConformance(t *testing.T) {
	work := gittest.NewRepo(t)
	var commits []string
	for i := range len(conformanceCases) + 2 { // and two for the client
		commits = append(commits, work.Commit(t, map[string]string{"n": strconv.Itoa(i)}, fmt.Sprintf("commit %d", i)))
	}
	started := time.Now()
	real := giteatest.Start(t)
	work.Push(t, real.PushURL(), "main")
	t.Logf("Gitea %s ready with the repository pushed in %v", real.Version, time.Since(started).Round(time.Millisecond))
	fake := forgetest.Start(t, real.Repository, work.Dir, "s3cret")
	gitea := target{name: "Gitea " + real.Version, url: real.URL, repo: real.Repository, token: real.Token, readOnly: real.ReadOnlyToken}
	faked := target{name: "fake", url: fake.URL, repo: fake.Repository, token: "s3cret", readOnly: fake.ReadOnlyToken()}
	for i, tc := range conformanceCases {
		t.Run(tc.name, func(t *testing.T) {
			var want, got []answer
			for _, s := range tc.steps {
				want = append(want, gitea.do(t, s, commits[i]))
				got = append(got, faked.do(t, s, commits[i]))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the fake answers unlike %s (-gitea +fake):\n%s", gitea.name, diff)
			}
			var codes []int
			var lastID float64
			for _, a := range want {
				codes = append(codes, a.Code)
				if m, ok := a.Body.(map[string]any); ok && a.Code == http.StatusCreated {
					if id, _ := m["id"].(float64); id <= lastID {
						t.Errorf("%s: %s gave id %v after %v; want ids that grow", gitea.name, a.Request, m["id"], lastID)
					}
					lastID, _ = m["id"].(float64)
				}
			}
			if tc.codes != nil && !cmp.Equal(codes, tc.codes) {
				t.Errorf("%s answered %v; the table says %v", gitea.name, codes, tc.codes)
			}
		})
	}
	n := len(conformanceCases)
	for _, tg := range []target{gitea, faked} {
		t.Run("client against "+tg.name, func(t *testing.T) { tg.checkClient(t, commits[n], commits[n+1]) })
	}
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
