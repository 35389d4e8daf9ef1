package gittest

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os/exec"
	"testing"
)

// GenerateHistory appends commits to branch in the bare repository
// bareDir with git fast-import, each adding filesPerCommit new files of
// blobSize pseudo-random bytes, and returns the new tip. It makes
// "biggish" repositories (thousands of objects) in well under a second.
func GenerateHistory(t testing.TB, bareDir, branch string, commits, filesPerCommit, blobSize int) string {
	t.Helper()
	return generate(t, bareDir, branch, commits, blobSize, "generated commit", func(stream *bytes.Buffer, rng *rand.Rand, c int) {
		for f := range filesPerCommit {
			content := randomText(rng, blobSize)
			fmt.Fprintf(stream, "M 100644 inline gen/%d/%d.txt\ndata %d\n%s\n", c, f, len(content), content)
		}
	})
}

// generate appends commits to branch in the bare repository bareDir with
// git fast-import: commit c is named "<message> c" and holds what files
// writes for it, with blobs drawn from a generator seeded by the old tip
// (appended history never repeats old blobs). It returns the new tip.
func generate(t testing.TB, bareDir, branch string, commits, blobSize int, message string,
	files func(stream *bytes.Buffer, rng *rand.Rand, c int)) string {
	t.Helper()
	Require(t, "git")
	var stream bytes.Buffer
	parent := revParse(bareDir, "refs/heads/"+branch)
	seed := fnv.New64a()
	seed.Write([]byte(parent))
	rng := rand.New(rand.NewPCG(seed.Sum64(), uint64(blobSize)))
	for c := range commits {
		fmt.Fprintf(&stream, "commit refs/heads/%s\n", branch)
		fmt.Fprintf(&stream, "committer Avalanche Test <test@avalanche.invalid> %d +0000\n", 1700000000+c)
		msg := fmt.Sprintf("%s %d\n", message, c)
		fmt.Fprintf(&stream, "data %d\n%s", len(msg), msg)
		if c == 0 && parent != "" {
			fmt.Fprintf(&stream, "from %s\n", parent)
		}
		files(&stream, rng, c)
		stream.WriteString("\n")
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir, cmd.Env, cmd.Stdin = bareDir, Env(t.TempDir()), &stream
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git fast-import in %s: %v: %s", bareDir, err, out)
	}
	return revParse(bareDir, "refs/heads/"+branch)
}

// revParse returns the hash ref points to in dir, or "" if it does not exist.
func revParse(dir, ref string) string {
	cmd := exec.Command("git", "rev-parse", "--verify", "-q", ref)
	cmd.Dir, cmd.Env = dir, Env(dir)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(out))
}

func randomText(rng *rand.Rand, n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return b
}

// GenerateEdits appends commits to branch in the bare repository bareDir
// like GenerateHistory, but each commit rewrites one file of a working set
// of files (gen/edit/<n/100>/<n%100>.txt, in turn) with blobSize new
// pseudo-random bytes: the history grows with every commit while the
// tip's tree stays files files big, as in a repository whose files are
// edited.
func GenerateEdits(t testing.TB, bareDir, branch string, commits, files, blobSize int) string {
	t.Helper()
	return generate(t, bareDir, branch, commits, blobSize, "edit", func(stream *bytes.Buffer, rng *rand.Rand, c int) {
		content := randomText(rng, blobSize)
		n := c % files
		fmt.Fprintf(stream, "M 100644 inline gen/edit/%d/%d.txt\ndata %d\n%s\n", n/100, n%100, len(content), content)
	})
}
