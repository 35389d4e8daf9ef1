package webhook

import (
	"encoding/hex"
	"time"

	"golang.org/x/time/rate"
)

// admission is what admit decided for an authenticated delivery.
type admission int

const (
	admitted admission = iota
	admitReplay
	admitLimited
)

// admit refuses a replay of a delivery accepted within the replay window,
// then applies the rate limit, and remembers what it lets through. A
// delivery is known by the forge's delivery id and by the HMAC of its
// body: the id header is not signed, so a replay under a fresh id is still
// the same signed body. A rate-limited delivery is not remembered, so the
// forge may send it again.
func (h *Handler) admit(id string, mac []byte) admission {
	h.once.Do(h.init)
	keys := []string{"mac:" + hex.EncodeToString(mac)}
	if id != "" {
		keys = append(keys, "id:"+id)
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen.expire(now.Add(-h.window()))
	for _, k := range keys {
		if h.seen.has(k) {
			return admitReplay
		}
	}
	if !h.limiter.Allow() {
		return admitLimited
	}
	h.seen.add(now, h.maxDeliveries(), keys)
	return admitted
}

func (h *Handler) init() {
	h.limiter = h.Limiter
	if h.limiter == nil {
		h.limiter = rate.NewLimiter(DefaultRate, DefaultBurst)
	}
	if h.now == nil {
		h.now = time.Now
	}
}

func (h *Handler) window() time.Duration {
	if h.ReplayWindow > 0 {
		return h.ReplayWindow
	}
	return DefaultReplayWindow
}

func (h *Handler) maxDeliveries() int {
	if h.MaxDeliveries > 0 {
		return h.MaxDeliveries
	}
	return DefaultMaxDeliveries
}

// deliveries remembers accepted deliveries, oldest first, each under all
// its keys. Its zero value is empty and ready.
type deliveries struct {
	keys  map[string]bool
	order []remembered
}

type remembered struct {
	at   time.Time
	keys []string
}

func (d *deliveries) has(key string) bool { return d.keys[key] }

// add remembers keys, dropping the oldest deliveries beyond max.
func (d *deliveries) add(at time.Time, max int, keys []string) {
	if d.keys == nil {
		d.keys = map[string]bool{}
	}
	for len(d.order) >= max {
		d.drop()
	}
	for _, k := range keys {
		d.keys[k] = true
	}
	d.order = append(d.order, remembered{at: at, keys: keys})
}

// expire forgets deliveries accepted before cutoff.
func (d *deliveries) expire(cutoff time.Time) {
	for len(d.order) > 0 && d.order[0].at.Before(cutoff) {
		d.drop()
	}
}

func (d *deliveries) drop() {
	for _, k := range d.order[0].keys {
		delete(d.keys, k)
	}
	d.order[0] = remembered{}
	d.order = d.order[1:]
}

// len is how many deliveries are remembered.
func (d *deliveries) len() int { return len(d.order) }
