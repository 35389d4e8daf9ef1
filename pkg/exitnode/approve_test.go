package exitnode

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/net/tsaddr"
	"tailscale.com/types/key"
)

// fakeLocal is a Running, advertising, unapproved tailscaled.
type fakeLocal struct {
	self *ipnstate.PeerStatus
}

func (f *fakeLocal) Status(context.Context) (*ipnstate.Status, error) {
	return &ipnstate.Status{BackendState: "Running", HaveNodeKey: true, Self: f.self}, nil
}
func (f *fakeLocal) GetPrefs(context.Context) (*ipn.Prefs, error) {
	return &ipn.Prefs{WantRunning: true, AdvertiseRoutes: tsaddr.ExitRoutes()}, nil
}
func (f *fakeLocal) EditPrefs(context.Context, *ipn.MaskedPrefs) (*ipn.Prefs, error) {
	panic("EditPrefs not expected")
}
func (f *fakeLocal) Start(context.Context, ipn.Options) error    { panic("Start not expected") }
func (f *fakeLocal) StartLoginInteractive(context.Context) error { panic("login not expected") }

// TestApproveAPI covers the device lookup and the routes body against the
// documented wire format: GET /api/v2/tailnet/{tailnet}/devices?fields=all
// and POST /api/v2/device/{id}/routes {"routes": [...]}.
func TestApproveAPI(t *testing.T) {
	nk := key.NewNode().Public()
	tests := []struct {
		name    string
		devices string // JSON list
		status  int    // for the POST
		want    []string
		wantErr string
	}{
		{"by node key, keeps subnet", `[{"nodeId":"nA","hostname":"other","nodeKey":"` + nk.String() + `","enabledRoutes":["10.9.0.0/16"]}]`,
			200, []string{"10.9.0.0/16", "0.0.0.0/0", "::/0"}, ""},
		{"same host name, other node key", `[{"nodeId":"nA","hostname":"vps","nodeKey":"nodekey:00"}]`, 200, nil, "host name \"vps\" is not proof of identity"},
		{"same host name, no node key", `[{"nodeId":"nA","hostname":"vps"},{"nodeId":"nB","hostname":"vps"}]`, 200, nil, "no device with this node's key"},
		{"unknown device", `[]`, 200, nil, "no device with this node's key " + nk.String()},
		{"api refuses", `[{"nodeId":"nA","hostname":"vps","nodeKey":"` + nk.String() + `"}]`, 403, nil, "approving exit routes for device nA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var posted []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == "GET" && r.URL.Path == "/api/v2/tailnet/-/devices" && r.URL.Query().Get("fields") == "all":
					w.Write([]byte(`{"devices":` + tt.devices + `}`))
				case r.Method == "POST" && r.URL.Path == "/api/v2/device/nA/routes":
					var body struct {
						Routes []string `json:"routes"`
					}
					json.NewDecoder(r.Body).Decode(&body)
					posted = body.Routes
					w.WriteHeader(tt.status)
					w.Write([]byte(`{"message":"forbidden"}`))
				default:
					http.Error(w, `{"message":"not found"}`, 404)
				}
			}))
			defer srv.Close()
			m := &Manager{
				Local:  &fakeLocal{self: &ipnstate.PeerStatus{HostName: "vps", PublicKey: nk, TailscaleIPs: []netip.Addr{netip.MustParseAddr("100.64.0.1")}}},
				Config: Config{APIKeyFile: writeSecret(t, "apikey", "tskey-api-x"), APIBaseURL: srv.URL},
			}
			s, err := m.Ensure(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || s.Approved {
					t.Fatalf("Ensure() = %+v, %v; want error containing %q", s, err, tt.wantErr)
				}
				return
			}
			if err != nil || !s.Approved {
				t.Fatalf("Ensure() = %+v, %v; want approved", s, err)
			}
			if diff := cmp.Diff(tt.want, posted); diff != "" {
				t.Errorf("posted routes (-want +got):\n%s", diff)
			}
		})
	}
}
