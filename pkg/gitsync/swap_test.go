package gitsync

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSwap(t *testing.T) {
	for name, swap := range map[string]func(src, dst string) error{
		"swapDir":      swapDir,
		"swapByRename": swapByRename,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "new"), filepath.Join(dir, "cur")
			for p, content := range map[string]string{src: "new", dst: "old"} {
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(p, "marker"), content)
			}
			if err := swap(src, dst); err != nil {
				t.Fatalf("%s(%q, %q) = %v", name, src, dst, err)
			}
			for p, want := range map[string]string{dst: "new", src: "old"} {
				got, err := os.ReadFile(filepath.Join(p, "marker"))
				if err != nil || string(got) != want {
					t.Errorf("after %s, %s holds %q, %v; want %q", name, p, got, err, want)
				}
			}
		})
	}
}
