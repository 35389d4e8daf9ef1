package check

import (
	"encoding/json"
	"fmt"
)

// k3sEmbedded are the alerts on components that k3s runs inside its own
// process (metrics on 127.0.0.1 only, no pods): nothing can be scraped, so
// each fires forever.
var k3sEmbedded = map[string]string{
	"KubeControllerManagerDown": "kubeControllerManager",
	"KubeSchedulerDown":         "kubeScheduler",
	"KubeProxyDown":             "kubeProxy",
}

// K3sAlertErrors reports PrometheusRule alerts that can never resolve on
// k3s.
func K3sAlertErrors(objs []Object) []error {
	var errs []error
	for _, o := range objs {
		if o.Kind != "PrometheusRule" {
			continue
		}
		var pr struct {
			Spec struct {
				Groups []struct {
					Rules []struct {
						Alert string `json:"alert"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"spec"`
		}
		if json.Unmarshal(o.JSON, &pr) != nil {
			continue
		}
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				if v, ok := k3sEmbedded[r.Alert]; ok {
					errs = append(errs, fmt.Errorf("%s: alert %s fires forever on k3s, which embeds that component with its metrics on localhost: set %s.enabled: false in the chart's values", o, r.Alert, v))
				}
			}
		}
	}
	return errs
}
