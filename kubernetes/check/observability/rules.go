package observability

// Rule is one alerting rule of the PrometheusRule.
type Rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// PrometheusRule is the prometheus-operator object (monitoring.coreos.com/v1).
type PrometheusRule struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       struct {
		Groups []RuleGroup `json:"groups"`
	} `json:"spec"`
}

// RuleGroup is a named list of rules.
type RuleGroup struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// NewestDeployment selects the avalanche_deployed_info series of the host
// that deployed last: its commit is the fleet's newest. Every agent
// records a deployment (deployed or up to date) for each main commit, so
// the newest is main's tip as soon as one host took it.
const NewestDeployment = `avalanche_deployed_info and on (host) ` +
	`(avalanche_deployed_timestamp_seconds == on () group_left () max(avalanche_deployed_timestamp_seconds))`

// Behind selects the avalanche_deployed_info series of the hosts that do
// not run the fleet's newest commit.
const Behind = `avalanche_deployed_info unless on (commit) (` + NewestDeployment + `)`

// alert builds a rule; summary and description may use $labels.
func alert(name, severity, forDur, expr, summary, description string) Rule {
	return Rule{Alert: name, Expr: expr, For: forDur, Labels: map[string]string{"severity": severity},
		Annotations: map[string]string{"summary": summary, "description": description}}
}

// Rules are the fleet's alerts. Only metrics the agent exports (and
// Prometheus's own up) may appear; the tests check it.
func Rules() PrometheusRule {
	var pr PrometheusRule
	pr.APIVersion, pr.Kind = "monitoring.coreos.com/v1", "PrometheusRule"
	pr.Metadata = Metadata{Name: "avalanche-agents", Labels: map[string]string{"app.kubernetes.io/part-of": "avalanche"}}
	pr.Spec.Groups = []RuleGroup{{Name: "avalanche-agents", Rules: []Rule{
		alert("AvalancheAgentDown", "warning", "10m", `up{job="avalanche-agent", role!~"(.*,)?workstation(,.*)?"} == 0`,
			"{{ $labels.host }}: avalanche-agent does not answer",
			"Prometheus cannot scrape the agent on {{ $labels.host }} ({{ $labels.instance }}) for 10 minutes: the host is down, the agent stopped, or the network is in the way. `systemctl status avalanche-agent` on the host. (Workstations, which sleep, are left out.)"),
		alert("AvalancheHostBehind", "warning", "1h", Behind,
			"{{ $labels.host }} runs {{ $labels.commit }}, not the fleet's newest commit, for an hour",
			"Another host deployed a newer commit an hour ago and {{ $labels.host }} has not taken it: it is failing, suspended, stuck or slow. `avalanche-agent fleet` shows why. (A host deploying a testing branch counts as the newest commit while it runs it.)"),
		alert("AvalancheRolledBack", "warning", "",
			`increase(avalanche_deployments_total{result="rolled-back"}[30m]) > 0`,
			"{{ $labels.host }} rolled a deployment back",
			"The activation or the health confirmation of a new system failed on {{ $labels.host }}, so the agent returned to the previous system and refuses that commit. `journalctl -u avalanche-agent AVALANCHE_RESULT=rolled-back` on the host."),
		alert("AvalancheReleaseLate", "warning", "1h", `avalanche_release_age_seconds and on (host) (`+Behind+`)`,
			"{{ $labels.host }} (builder mode) waits for the builder's release of the fleet's newest commit",
			"{{ $labels.host }} deploys only what the builder released, and another host deployed a newer commit an hour ago: the builder has not released it (down, failing or slow). `avalanche-agent status` on the host shows the wait, on the builder its progress."),
		alert("AvalancheRolloutStalled", "warning", "", `avalanche_rollout_held_seconds{verdict="waiting"} > 7200`,
			"{{ $labels.host }} has waited two hours at its rollout gate",
			"The earlier waves have not all shown main's commit deployed and healthy for the soak time in two hours: a host of theirs is down, failing without a verdict, or not reporting to the forge. `avalanche-agent status` on {{ $labels.host }} names them; `avalanche-agent rollout skip <commit>` lets the fleet go on (docs/rollouts.md)."),
		alert("AvalancheLeaseStalled", "warning", "", `avalanche_lease_waiting_seconds > 3600`,
			"{{ $labels.host }} has waited an hour for the disruption budget of group {{ $labels.group }}",
			"A deployment on {{ $labels.host }} is built and waits for its group's lease, which other hosts have held for an hour: a holder activates or reboots slowly, or one that died still renews (a dead holder's claim expires after rollout.lease.ttl). `avalanche-agent status` on {{ $labels.host }} names the holders; their claims are the forge statuses avalanche/lease/{{ $labels.group }}/<host> on the anchor commit (docs/rollouts.md)."),
		alert("AvalancheDeployFailing", "warning", "15m",
			`avalanche_phase_last_success{phase=~"evaluate|build|secrets"} == 0`,
			"{{ $labels.host }}: {{ $labels.phase }} fails",
			"The last {{ $labels.phase }} on {{ $labels.host }} failed; the host keeps running its previous system. `journalctl -u avalanche-agent AVALANCHE_PHASE={{ $labels.phase }}`."),
		alert("AvalancheCannotFetch", "warning", "30m", `avalanche_phase_last_success{phase="fetch"} == 0`,
			"{{ $labels.host }} cannot fetch the fleet repository",
			"Fetches from the forge fail on {{ $labels.host }} for 30 minutes: the forge is down, or the host's deploy key or token is refused."),
		alert("AvalancheStuck", "warning", "", `time() - avalanche_phase_last_timestamp_seconds{phase="fetch"} > 900`,
			"{{ $labels.host }}: no fetch for 15 minutes",
			"The agent on {{ $labels.host }} answers but has not fetched for 15 minutes although it polls every minute: a pass is stuck (a long build counts too)."),
		alert("AvalancheConfirmationPending", "warning", "15m", `avalanche_pending_confirmation == 1`,
			"{{ $labels.host }}: an activation waits for its health confirmation",
			"The new system on {{ $labels.host }} has not been confirmed healthy for 15 minutes."),
		alert("AvalancheDrift", "warning", "30m", `avalanche_drift == 1`,
			"{{ $labels.host }} runs another system than the one deployed",
			"For 30 minutes {{ $labels.host }} has run a system the agent did not deploy (a hand-run nixos-rebuild, a manual rollback, a boot-menu choice) and has not converged back: deploy.repairDrift is off, or the repair fails. `avalanche-agent status` on the host names what runs and the likely cause."),
		alert("AvalancheWebhookFailing", "warning", "",
			`increase(avalanche_webhook_requests_total{code=~"4..|5..", code!="429"}[1h]) > 0 unless on (host) increase(avalanche_webhook_requests_total{code=~"2.."}[1h]) > 0`,
			"{{ $labels.host }} refuses the forge's webhook deliveries",
			"Every webhook delivery to {{ $labels.host }} in the last hour was refused ({{ $labels.code }}): the forge's webhook secret and the host's webhook.secretFile differ, or the deliveries are replays. Pushes still deploy at the next poll."),
		alert("AvalancheSuspended", "info", "1d", `avalanche_suspended == 1`,
			"{{ $labels.host }}: deployments suspended for a day",
			"`avalanche-agent resume` on {{ $labels.host }} deploys again."),
		alert("AvalancheRebootNeeded", "info", "7d", `avalanche_reboot_needed == 1`,
			"{{ $labels.host }} needs a reboot",
			"Kernel, initrd or kernel modules of {{ $labels.host }} changed a week ago and the host has not rebooted since."),
	}}}
	return pr
}
