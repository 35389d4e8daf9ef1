package metrics

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// sample is one series of a family written at scrape time.
type sample struct {
	series string
	value  float64
}

// writeSamples writes a family whose values are read at scrape time.
func writeSamples(w *bytes.Buffer, name, typ, help string, samples ...sample) {
	writeHeader(w, name, typ, help)
	for _, s := range samples {
		w.WriteString(s.series + " " + formatValue(s.value) + "\n")
	}
}

// writeOne writes a family of one label-less series.
func writeOne(w *bytes.Buffer, name, typ, help string, v float64) {
	writeSamples(w, name, typ, help, sample{name, v})
}

// memstat is one go_memstats_* family, read from runtime.MemStats.
type memstat struct {
	name, typ, help string
	value           func(*runtime.MemStats) float64
}

// memstats are the go_memstats_* families, sorted by name.
var memstats = []memstat{
	{"alloc_bytes", typeGauge, "Bytes of allocated heap objects (MemStats.Alloc).", func(m *runtime.MemStats) float64 { return float64(m.Alloc) }},
	{"alloc_bytes_total", typeCounter, "Cumulative bytes allocated for heap objects (MemStats.TotalAlloc).", func(m *runtime.MemStats) float64 { return float64(m.TotalAlloc) }},
	{"buck_hash_sys_bytes", typeGauge, "Bytes of memory in profiling bucket hash tables (MemStats.BuckHashSys).", func(m *runtime.MemStats) float64 { return float64(m.BuckHashSys) }},
	{"frees_total", typeCounter, "Cumulative count of heap objects freed (MemStats.Frees).", func(m *runtime.MemStats) float64 { return float64(m.Frees) }},
	{"gc_sys_bytes", typeGauge, "Bytes of memory in garbage collection metadata (MemStats.GCSys).", func(m *runtime.MemStats) float64 { return float64(m.GCSys) }},
	{"heap_alloc_bytes", typeGauge, "Bytes of allocated heap objects (MemStats.HeapAlloc).", func(m *runtime.MemStats) float64 { return float64(m.HeapAlloc) }},
	{"heap_idle_bytes", typeGauge, "Bytes in idle (unused) heap spans (MemStats.HeapIdle).", func(m *runtime.MemStats) float64 { return float64(m.HeapIdle) }},
	{"heap_inuse_bytes", typeGauge, "Bytes in in-use heap spans (MemStats.HeapInuse).", func(m *runtime.MemStats) float64 { return float64(m.HeapInuse) }},
	{"heap_objects", typeGauge, "Number of allocated heap objects (MemStats.HeapObjects).", func(m *runtime.MemStats) float64 { return float64(m.HeapObjects) }},
	{"heap_released_bytes", typeGauge, "Bytes of physical memory returned to the OS (MemStats.HeapReleased).", func(m *runtime.MemStats) float64 { return float64(m.HeapReleased) }},
	{"heap_sys_bytes", typeGauge, "Bytes of heap memory obtained from the OS (MemStats.HeapSys).", func(m *runtime.MemStats) float64 { return float64(m.HeapSys) }},
	{"last_gc_time_seconds", typeGauge, "When the last garbage collection finished, in Unix seconds (MemStats.LastGC).", func(m *runtime.MemStats) float64 { return float64(m.LastGC) / 1e9 }},
	{"mallocs_total", typeCounter, "Cumulative count of heap objects allocated (MemStats.Mallocs).", func(m *runtime.MemStats) float64 { return float64(m.Mallocs) }},
	{"mcache_inuse_bytes", typeGauge, "Bytes of allocated mcache structures (MemStats.MCacheInuse).", func(m *runtime.MemStats) float64 { return float64(m.MCacheInuse) }},
	{"mcache_sys_bytes", typeGauge, "Bytes of memory obtained from the OS for mcache structures (MemStats.MCacheSys).", func(m *runtime.MemStats) float64 { return float64(m.MCacheSys) }},
	{"mspan_inuse_bytes", typeGauge, "Bytes of allocated mspan structures (MemStats.MSpanInuse).", func(m *runtime.MemStats) float64 { return float64(m.MSpanInuse) }},
	{"mspan_sys_bytes", typeGauge, "Bytes of memory obtained from the OS for mspan structures (MemStats.MSpanSys).", func(m *runtime.MemStats) float64 { return float64(m.MSpanSys) }},
	{"next_gc_bytes", typeGauge, "Target heap size of the next garbage collection (MemStats.NextGC).", func(m *runtime.MemStats) float64 { return float64(m.NextGC) }},
	{"other_sys_bytes", typeGauge, "Bytes of memory in miscellaneous runtime allocations (MemStats.OtherSys).", func(m *runtime.MemStats) float64 { return float64(m.OtherSys) }},
	{"stack_inuse_bytes", typeGauge, "Bytes in stack spans (MemStats.StackInuse).", func(m *runtime.MemStats) float64 { return float64(m.StackInuse) }},
	{"stack_sys_bytes", typeGauge, "Bytes of stack memory obtained from the OS (MemStats.StackSys).", func(m *runtime.MemStats) float64 { return float64(m.StackSys) }},
	{"sys_bytes", typeGauge, "Total bytes of memory obtained from the OS (MemStats.Sys).", func(m *runtime.MemStats) float64 { return float64(m.Sys) }},
}

// writeGo writes the go_* families: the Go runtime's memory, garbage
// collector and scheduler figures, read now.
func writeGo(w *bytes.Buffer) {
	gc := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&gc)
	const name = "go_gc_duration_seconds"
	samples := make([]sample, 0, 7)
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		samples = append(samples, sample{name + `{quantile="` + q + `"}`, gc.PauseQuantiles[i].Seconds()})
	}
	samples = append(samples, sample{name + "_sum", gc.PauseTotal.Seconds()}, sample{name + "_count", float64(gc.NumGC)})
	writeSamples(w, name, typeSummary, "Stop-the-world pauses of the garbage collector, in seconds.", samples...)

	rm := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(rm)
	writeOne(w, "go_gc_gogc_percent", typeGauge, "Heap growth target in percent (GOGC).", runtimeValue(rm[0]))
	writeOne(w, "go_gc_gomemlimit_bytes", typeGauge, "Memory limit of the Go runtime in bytes (GOMEMLIMIT).", runtimeValue(rm[1]))
	writeOne(w, "go_goroutines", typeGauge, "Number of goroutines that exist now.", float64(runtime.NumGoroutine()))
	writeSamples(w, "go_info", typeGauge, "Version of Go the agent was built with; always 1.",
		sample{seriesName("go_info", []string{"version"}, []string{runtime.Version()}), 1})

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, s := range memstats {
		writeOne(w, "go_memstats_"+s.name, s.typ, s.help, s.value(&ms))
	}
	writeOne(w, "go_sched_gomaxprocs_threads", typeGauge, "Threads that may run Go code at once (GOMAXPROCS).", float64(runtime.GOMAXPROCS(0)))
	threads, _ := runtime.ThreadCreateProfile(nil)
	writeOne(w, "go_threads", typeGauge, "Number of OS threads created.", float64(threads))
}

// runtimeValue returns a runtime/metrics sample as a float.
func runtimeValue(s metrics.Sample) float64 {
	switch s.Value.Kind() {
	case metrics.KindUint64:
		return float64(s.Value.Uint64())
	case metrics.KindFloat64:
		return s.Value.Float64()
	}
	return 0
}
