package secrets

import (
	"encoding/json"
	"encoding/pem"
	"testing"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
