package gitsync

import (
	"bufio"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Pack entry types (git's pack format).
const (
	packOFSDelta = 6
	packREFDelta = 7
)

// errMalformedPack means the remote sent something that is not a pack.
var errMalformedPack = errors.New("malformed pack")

// packCheck reads a pack stream as it arrives and refuses it as soon as a
// header states more than the limits allow. Every entry is inflated into
// a small window and discarded, only to find where the next one begins
// and to read a delta's result size: memory stays a few dozen KiB
// whatever the pack holds. Integrity (hashes, delta bases) is left to the
// indexer that reads the accepted pack afterwards.
type packCheck struct {
	lim     Limits
	r       *bufio.Reader
	zr      io.ReadCloser // reused zlib reader
	objects int64
}

// checkPack reads the whole pack from r (which should stop the transfer
// once MaxFetchSize bytes were read) and returns a *limitError when it
// breaks a limit.
func checkPack(r io.Reader, lim Limits) (int64, error) {
	c := &packCheck{lim: lim, r: bufio.NewReaderSize(r, 32<<10)}
	n, err := c.header()
	if err != nil {
		return 0, err
	}
	for i := int64(0); i < n; i++ {
		if err := c.entry(); err != nil {
			return c.objects, err
		}
		c.objects++
	}
	var trailer [20]byte
	if _, err := io.ReadFull(c.r, trailer[:]); err != nil {
		return c.objects, fmt.Errorf("%w: reading trailer: %w", errMalformedPack, err)
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		return c.objects, fmt.Errorf("%w: data after the trailer", errMalformedPack)
	}
	return c.objects, nil
}

// header reads "PACK", the version and the object count.
func (c *packCheck) header() (int64, error) {
	var h [12]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, fmt.Errorf("%w: reading header: %w", errMalformedPack, err)
	}
	if string(h[:4]) != "PACK" {
		return 0, fmt.Errorf("%w: no PACK signature", errMalformedPack)
	}
	if v := binary.BigEndian.Uint32(h[4:8]); v != 2 && v != 3 {
		return 0, fmt.Errorf("%w: version %d", errMalformedPack, v)
	}
	n := int64(binary.BigEndian.Uint32(h[8:12]))
	if n > c.lim.MaxObjects {
		return 0, &limitError{limit: "maxObjects", max: c.lim.MaxObjects, size: n}
	}
	return n, nil
}

// entry checks one object: its stated size, a delta's stated result size,
// and that its data inflates to exactly the stated size.
func (c *packCheck) entry() error {
	typ, size, err := c.entryHeader()
	if err != nil {
		return err
	}
	if err := c.checkSize(size); err != nil {
		return err
	}
	switch typ {
	case packOFSDelta:
		if err := c.skipOffset(); err != nil {
			return err
		}
	case packREFDelta:
		if _, err := c.r.Discard(20); err != nil {
			return fmt.Errorf("%w: reading delta base: %w", errMalformedPack, err)
		}
	case 0, 5:
		return fmt.Errorf("%w: object type %d", errMalformedPack, typ)
	}
	if err := c.openData(); err != nil {
		return err
	}
	counted := &countingReader{r: c.zr}
	if typ == packOFSDelta || typ == packREFDelta {
		if err := c.checkDelta(counted); err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(counted, size-counted.n+1)); err != nil {
		return fmt.Errorf("%w: inflating object %d: %w", errMalformedPack, c.objects, err)
	}
	if counted.n != size {
		return fmt.Errorf("%w: object %d inflates to %d bytes, its header says %d", errMalformedPack, c.objects, counted.n, size)
	}
	return nil
}

func (c *packCheck) checkSize(size int64) error {
	if size > c.lim.MaxObjectSize {
		return &limitError{limit: "maxObjectSize", max: c.lim.MaxObjectSize, size: size}
	}
	return nil
}

// entryHeader reads an entry's type and inflated size.
func (c *packCheck) entryHeader() (typ byte, size int64, err error) {
	b, err := c.r.ReadByte()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: reading object %d: %w", errMalformedPack, c.objects, err)
	}
	typ = (b >> 4) & 7
	size = int64(b & 15)
	for shift := 4; b&0x80 != 0; shift += 7 {
		if shift > 56 {
			return 0, 0, fmt.Errorf("%w: object %d: size too long", errMalformedPack, c.objects)
		}
		if b, err = c.r.ReadByte(); err != nil {
			return 0, 0, fmt.Errorf("%w: reading object %d: %w", errMalformedPack, c.objects, err)
		}
		size |= int64(b&0x7f) << shift
	}
	return typ, size, nil
}

// skipOffset reads an OFS_DELTA's base offset.
func (c *packCheck) skipOffset() error {
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil || i > 9 {
			return fmt.Errorf("%w: object %d: bad delta offset", errMalformedPack, c.objects)
		}
		if b&0x80 == 0 {
			return nil
		}
	}
}

// openData starts inflating the entry's data. The bufio.Reader is an
// io.ByteReader, so zlib reads no further than the entry's end.
func (c *packCheck) openData() error {
	var err error
	if c.zr == nil {
		c.zr, err = zlib.NewReader(c.r)
	} else {
		err = c.zr.(zlib.Resetter).Reset(c.r, nil)
	}
	if err != nil {
		return fmt.Errorf("%w: object %d: %w", errMalformedPack, c.objects, err)
	}
	return nil
}

// checkDelta reads a delta's two leading sizes (base, result) and refuses
// a result over MaxObjectSize.
func (c *packCheck) checkDelta(r *countingReader) error {
	if _, err := deltaVarint(r); err != nil {
		return fmt.Errorf("%w: object %d: delta base size: %w", errMalformedPack, c.objects, err)
	}
	result, err := deltaVarint(r)
	if err != nil {
		return fmt.Errorf("%w: object %d: delta result size: %w", errMalformedPack, c.objects, err)
	}
	return c.checkSize(result)
}

// deltaVarint reads one little-endian base-128 size of a delta header.
func deltaVarint(r io.Reader) (int64, error) {
	var v int64
	var b [1]byte
	for shift := 0; ; shift += 7 {
		if shift > 56 {
			return 0, errors.New("size too long")
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, err
		}
		v |= int64(b[0]&0x7f) << shift
		if b[0]&0x80 == 0 {
			return v, nil
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// cappedReader fails once more than max bytes were read, so a pack over
// MaxFetchSize stops the transfer.
type cappedReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, &limitError{limit: "maxFetchSize", max: c.max, size: c.n}
	}
	return n, err
}
