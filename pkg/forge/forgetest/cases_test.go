package forgetest_test

import (
	"fmt"
	"net/http"
	"strings"
)

// conformanceCase is a list of requests on one fresh commit and, where
// the answer matters to the agent or surprised us, the status codes the
// real forge answered them with.
type conformanceCase struct {
	name  string
	steps []step
	codes []int
}

var longDescription = strings.Repeat("activation failed: unit x.service ", 40) // 1360 characters

var conformanceCases = []conformanceCase{
	{name: "pending", steps: []step{post("pending", "avalanche/eagle"), combined("")}},
	{name: "success", steps: []step{post("success", "avalanche/eagle"), combined("")}},
	{name: "failure", steps: []step{post("failure", "avalanche/eagle"), combined("")}},
	{name: "error", steps: []step{post("error", "avalanche/eagle"), combined("")}},
	{name: "warning", steps: []step{post("warning", "avalanche/eagle"), combined("")}},
	{name: "skipped", steps: []step{post("skipped", "avalanche/eagle"), combined("")}},
	{name: "unknown state", steps: []step{post("done", "avalanche/eagle"), combined("")}, codes: []int{201, 200}},
	{name: "no state", steps: []step{postBody(`{"context":"avalanche/eagle"}`), combined("")}},
	{name: "no context", steps: []step{postBody(`{"state":"success"}`), combined("")}},
	{name: "every field", steps: []step{
		postBody(`{"state":"failure","context":"avalanche/eagle","target_url":"https://grafana.internal/d/fleet?host=eagle","description":"rolled back"}`),
		combined("")}},
	{name: "long description", steps: []step{
		postBody(fmt.Sprintf(`{"state":"failure","context":"avalanche/eagle","description":%q}`, longDescription)), combined("")}},
	{name: "spaces around fields", steps: []step{
		postBody(`{"state":"success","context":" avalanche/eagle ","target_url":" https://x.invalid/ ","description":"  deployed\n"}`),
		combined("")}},
	{name: "target_url not a URL", steps: []step{
		postBody(`{"state":"success","context":"avalanche/eagle","target_url":"not a url"}`), combined("")}},
	{name: "same context twice: the latest wins", steps: []step{
		post("pending", "avalanche/eagle"), post("success", "avalanche/eagle"), combined("")}},
	{name: "a context set again moves first", steps: []step{
		post("pending", "avalanche/a"), post("pending", "avalanche/b"), post("pending", "avalanche/c"),
		post("success", "avalanche/a"), combined("")}},
	{name: "worst state: pending over success", steps: []step{
		post("success", "a"), post("pending", "b"), combined("")}},
	{name: "worst state: failure over pending", steps: []step{
		post("pending", "a"), post("failure", "b"), post("success", "c"), combined("")}},
	{name: "worst state: error and failure", steps: []step{
		post("error", "a"), post("failure", "b"), combined("")}},
	{name: "worst state: warning and success", steps: []step{
		post("warning", "a"), post("success", "b"), combined("")}},
	{name: "paging", steps: []step{
		post("success", "h1"), post("success", "h2"), post("failure", "h3"), post("pending", "h4"), post("success", "h5"),
		combined("limit=2"), combined("limit=2&page=2"), combined("limit=2&page=3"), combined("limit=2&page=4"),
		combined("page=0&limit=0"), combined("limit=100"), combined("page=-1")}},
	{name: "no statuses", steps: []step{combined(""), combined("page=2")}},
	{name: "unknown commit", steps: []step{
		{method: http.MethodGet, path: "/repos/{repo}/commits/{unknown}/status"},
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{unknown}", body: `{"state":"success","context":"a"}`}},
		codes: []int{404, 500}},
	{name: "short commit id", steps: []step{
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{short}", body: `{"state":"success","context":"a"}`},
		{method: http.MethodGet, path: "/repos/{repo}/commits/{short}/status"}, combined("")}},
	{name: "unknown repository", steps: []step{
		{method: http.MethodPost, path: "/repos/fleet/other/statuses/{sha}", body: `{"state":"success","context":"a"}`},
		{method: http.MethodGet, path: "/repos/fleet/other/commits/{sha}/status"},
		{method: http.MethodGet, path: "/repos/fleet/other/commits/{sha}/status", auth: "none"}},
		codes: []int{404, 404, 404}},
	{name: "repository name in another case", steps: []step{
		{method: http.MethodPost, path: "/repos/FLEET/Avalanche/statuses/{sha}", body: `{"state":"success","context":"a"}`},
		{method: http.MethodGet, path: "/repos/Fleet/AVALANCHE/commits/{sha}/status"}}},
	{name: "read-only token, unknown repository", steps: []step{
		{method: http.MethodPost, path: "/repos/fleet/other/statuses/{sha}", auth: "read", body: `{"state":"success","context":"a"}`},
		{method: http.MethodGet, path: "/repos/fleet/other/commits/{sha}/status", auth: "read"}},
		codes: []int{403, 404}},
	{name: "wrong token, unknown repository", steps: []step{
		{method: http.MethodPost, path: "/repos/fleet/other/statuses/{sha}", auth: "wrong", body: `{"state":"success","context":"a"}`}}},
	{name: "read-only token, invalid body", steps: []step{
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}", auth: "read", body: `{`}}},
	{name: "invalid body, unknown commit", steps: []step{
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{unknown}", body: `{`}}},
	{name: "does the forge have the commit", steps: []step{
		{method: http.MethodGet, path: "/repos/{repo}/git/commits/{unknown}"},
		{method: http.MethodGet, path: "/repos/{repo}/git/commits/{unknown}", auth: "read"},
		{method: http.MethodGet, path: "/repos/{repo}/git/commits/{unknown}", auth: "none"},
		{method: http.MethodGet, path: "/repos/fleet/other/git/commits/{unknown}"},
		{method: http.MethodGet, path: "/repos/{repo}/git/commits/{sha}?stat=false&verification=false&files=false", keys: []string{"sha"}}}},
	{name: "token schemes", steps: []step{
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}", auth: "bearer", body: `{"state":"success","context":"a"}`},
		{method: http.MethodGet, path: "/repos/{repo}/commits/{sha}/status", auth: "bearer"}}},
	{name: "no token", steps: []step{
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}", auth: "none", body: `{"state":"success","context":"a"}`},
		{method: http.MethodGet, path: "/repos/{repo}/commits/{sha}/status", auth: "none"}, combined("")},
		codes: []int{404, 404, 200}},
	{name: "wrong token", steps: []step{
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}", auth: "wrong", body: `{"state":"success","context":"a"}`},
		{method: http.MethodGet, path: "/repos/{repo}/commits/{sha}/status", auth: "wrong"}, combined("")},
		codes: []int{401, 401, 200}},
	{name: "garbage token", steps: []step{
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}", auth: "garbage", body: `{"state":"success","context":"a"}`},
		{method: http.MethodGet, path: "/repos/{repo}/commits/{sha}/status", auth: "garbage"}, combined("")}},
	{name: "read-only token", steps: []step{
		post("success", "a"),
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}", auth: "read", body: `{"state":"failure","context":"a"}`},
		{method: http.MethodGet, path: "/repos/{repo}/commits/{sha}/status", auth: "read"}},
		codes: []int{201, 403, 200}},
	{name: "invalid bodies", steps: []step{
		postBody(`{`), postBody(`[]`), postBody(`{"state":5}`), postBody(""),
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}", contentType: "text/plain", body: `{"state":"success","context":"text"}`},
		{method: http.MethodPost, path: "/repos/{repo}/statuses/{sha}", contentType: "application/x-www-form-urlencoded", body: `state=success&context=form`},
		combined("")},
		codes: []int{422, 422, 422, 422, 422, 201, 200}},
	{name: "other methods", steps: []step{
		{method: http.MethodPut, path: "/repos/{repo}/statuses/{sha}", body: `{"state":"success","context":"a"}`},
		{method: http.MethodDelete, path: "/repos/{repo}/statuses/{sha}"},
		{method: http.MethodPost, path: "/repos/{repo}/commits/{sha}/status", body: `{"state":"success","context":"a"}`},
		combined("")},
		codes: []int{405, 405, 404, 200}},
}
