package gitsync

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/google/go-cmp/cmp"
)

// nearIdentical returns n files of size bytes that differ in their last
// line: a push of them compresses to a few KB, one a delta of the other.
func nearIdentical(n, size int) map[string]string {
	line := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"
	body := strings.Repeat(line, size/len(line))
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("big/%d.bin", i)] = body + fmt.Sprintf("copy %d\n", i)
	}
	return files
}

func manyFiles(n int) map[string]string {
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("many/%d.txt", i)] = fmt.Sprintf("file %d\n", i)
	}
	return files
}

func TestFetchRefusesOverLimits(t *testing.T) {
	tests := []struct {
		name   string
		branch string
		files  map[string]string
		limits Limits
		limit  string
	}{
		{"object on main", "main", nearIdentical(2, 4<<20), Limits{MaxObjectSize: 1 << 20}, "maxObjectSize"},
		{"object on testing", "testing/eagle", nearIdentical(2, 4<<20), Limits{MaxObjectSize: 1 << 20}, "maxObjectSize"},
		{"objects on main", "main", manyFiles(50), Limits{MaxObjects: 20}, "maxObjects"},
		{"pack bytes on main", "main", map[string]string{"r.txt": randomText(1 << 20)}, Limits{MaxFetchSize: 256 << 10}, "maxFetchSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, first := newFixture(t)
			srv := gittest.StartHTTPServer(t, f.bare, "")
			r := newRepo(t, Remote{URL: srv.URL}, "main", "testing/eagle")
			r.Limits = tt.limits
			mustFetch(t, r)

			f.work.Checkout(t, tt.branch)
			pushed := f.work.Commit(t, tt.files, "a big push")
			f.push(t)
			for poll := range 2 {
				srv.Reset()
				res, err := r.Fetch(context.Background())
				var tl *TooLargeError
				if tt.branch == "main" {
					if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) {
						t.Fatalf("poll %d: Fetch = %+v, %v; want a TooLargeError", poll, res, err)
					}
				} else {
					if err != nil || len(res.Refused) != 1 {
						t.Fatalf("poll %d: Fetch = %+v, %v; want %s refused", poll, res, err, tt.branch)
					}
					tl = res.Refused[0]
					wantHeads(t, res, map[string]string{"main": first})
				}
				want := TooLargeError{Branch: tt.branch, Commit: pushed, Limit: tt.limit, Max: tl.Max, Size: tl.Size}
				if diff := cmp.Diff(want, *tl); diff != "" {
					t.Errorf("poll %d: refusal (-want +got):\n%s", poll, diff)
				}
				if msg := tl.Error(); !strings.Contains(msg, tt.limit) || !strings.Contains(msg, `"`+tt.branch+`"`) {
					t.Errorf("poll %d: message %q does not name the limit and the branch", poll, msg)
				}
				if poll == 1 && srv.Started("POST") != 0 {
					t.Errorf("poll %d fetched the refused branch again: %+v", poll, srv.Requests())
				}
			}
			l, err := openLocal(r.Dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.has(mustHash(t, pushed)) {
				t.Errorf("the refused commit %s is in the copy", pushed)
			}
		})
	}
}

func mustHash(t *testing.T, s string) [20]byte {
	t.Helper()
	h, err := parseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func randomText(n int) string {
	var b strings.Builder
	x := uint64(88172645463325252)
	for b.Len() < n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		fmt.Fprintf(&b, "%016x", x)
	}
	return b.String()
}

// rawPack builds a pack of entries (type, stated size, inflated data).
func rawPack(t *testing.T, entries ...packEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("PACK")
	binary.Write(&b, binary.BigEndian, uint32(2))
	binary.Write(&b, binary.BigEndian, uint32(len(entries)))
	for _, e := range entries {
		c := byte(e.typ<<4) | byte(e.size&15)
		rest := e.size >> 4
		for rest != 0 {
			b.WriteByte(c | 0x80)
			c = byte(rest & 0x7f)
			rest >>= 7
		}
		b.WriteByte(c)
		if e.typ == packOFSDelta {
			b.WriteByte(byte(b.Len())) // any offset: the check does not resolve bases
		}
		z := zlib.NewWriter(&b)
		z.Write(e.data)
		z.Close()
	}
	b.Write(make([]byte, 20))
	return b.Bytes()
}

type packEntry struct {
	typ  int
	size int64
	data []byte
}

// deltaData is a delta header (base size, result size) and one copy op.
func deltaData(base, result int64) []byte {
	var b []byte
	for _, v := range []int64{base, result} {
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		b = append(b, byte(v))
	}
	return append(b, 0x90, 0x10) // copy 16 bytes from offset 0
}

func TestCheckPack(t *testing.T) {
	lim := Limits{MaxObjectSize: 1 << 20, MaxFetchSize: 1 << 30, MaxObjects: 10}
	blob := bytes.Repeat([]byte("x"), 1000)
	huge := deltaData(1000, 256<<20)
	tests := []struct {
		name    string
		entries []packEntry
		limit   string // "" for none
		broken  bool
	}{
		{"small objects", []packEntry{{3, 1000, blob}, {packOFSDelta, int64(len(deltaData(1000, 16))), deltaData(1000, 16)}}, "", false},
		{"object stated over the limit", []packEntry{{3, 2 << 20, nil}}, "maxObjectSize", false},
		{"delta whose result is over the limit", []packEntry{{3, 1000, blob}, {packOFSDelta, int64(len(huge)), huge}}, "maxObjectSize", false},
		{"ref delta whose result is over the limit", []packEntry{{packREFDelta, int64(len(huge)), huge}}, "maxObjectSize", false},
		{"too many objects", make([]packEntry, 11), "maxObjects", false},
		{"object inflating past its stated size", []packEntry{{3, 10, blob}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pack := rawPack(t, tt.entries...)
			if tt.entries[0].typ == packREFDelta {
				// A ref delta names its base by hash after the header byte.
				pack = append(pack[:13:13], append(make([]byte, 20), pack[13:]...)...)
			}
			_, err := checkPack(bytes.NewReader(pack), lim)
			var le *limitError
			switch {
			case tt.limit != "" && (!errors.As(err, &le) || le.limit != tt.limit):
				t.Errorf("checkPack = %v; want %s exceeded", err, tt.limit)
			case tt.broken && !errors.Is(err, errMalformedPack):
				t.Errorf("checkPack = %v; want a malformed pack", err)
			case tt.limit == "" && !tt.broken && err != nil:
				t.Errorf("checkPack = %v; want nil", err)
			}
		})
	}
}
