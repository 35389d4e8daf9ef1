package s3cache

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/avalanche-fleet/avalanche/pkg/s3cache/s3url"
)

// checkers bounds the requests Missing has in flight: a NixOS closure has
// a thousand or more paths, two requests each.
const checkers = 8

// Missing returns the paths the bucket does not hold whole, in the order
// given: a path is held when its narinfo is there and so is the NAR the
// narinfo names. It also returns the narinfos of the paths held. Its
// errors are never a path's fault: the bucket unreachable, refusing the
// keys, or a narinfo it serves that names no NAR.
func (b *Bucket) Missing(ctx context.Context, paths []string) (missing []string, narinfos map[string]string, err error) {
	held := make([]string, len(paths))
	errs := make([]error, len(paths))
	sem := make(chan struct{}, checkers)
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			held[i], errs[i] = b.held(ctx, p)
		}()
	}
	wg.Wait()
	narinfos = map[string]string{}
	for i, p := range paths {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		if held[i] == "" {
			missing = append(missing, p)
		} else {
			narinfos[p] = held[i]
		}
	}
	return missing, narinfos, nil
}

// held returns the narinfo of path when the bucket holds it and its NAR,
// and "" when either is missing.
func (b *Bucket) held(ctx context.Context, path string) (string, error) {
	key := s3url.NarinfoKey(path)
	narinfo, err := b.get(ctx, key)
	if notFound(err) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("reading %s from bucket %s: %w", key, b.name, err)
	}
	nar, err := narURL(narinfo)
	if err != nil {
		return "", fmt.Errorf("%s in bucket %s: %w", key, b.name, err)
	}
	if _, err := b.client.StatObject(ctx, b.name, nar, minio.StatObjectOptions{}); notFound(err) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("checking %s in bucket %s: %w", nar, b.name, err)
	}
	return narinfo, nil
}

// maxNarinfo bounds what get reads: a narinfo is a few hundred bytes, a
// few KiB with many references.
const maxNarinfo = 1 << 20

func (b *Bucket) get(ctx context.Context, key string) (string, error) {
	obj, err := b.client.GetObject(ctx, b.name, key, minio.GetObjectOptions{})
	if err != nil {
		return "", err
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, maxNarinfo+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxNarinfo {
		return "", fmt.Errorf("%s is larger than %d bytes", key, maxNarinfo)
	}
	return string(data), nil
}
