package fleet

import (
	"strings"

	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// builderPhases fills each row's Builder from the progress the fleet's
// builders reported (one per host with the builder role): the phase of
// that host's system and the commit it is for.
func builderPhases(rows []Row, builders []*status.Builder) {
	for i := range rows {
		var phases []string
		for _, b := range builders {
			if b == nil {
				continue
			}
			if h, ok := b.Hosts[rows[i].Host]; ok {
				phases = append(phases, h.Phase+" "+short(b.Commit))
			}
		}
		rows[i].Builder = strings.Join(phases, ", ")
	}
}

func short(c string) string {
	if len(c) > shortCommit {
		return c[:shortCommit]
	}
	return c
}
