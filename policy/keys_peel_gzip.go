package policy

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
)

// Stage 3, peel: gzip (a gzipped key or tar archive in binaryData, or base64 of one),
// inflated within what the budget has left.

// gunzip inflates a gzip stream within what the budget has left: every byte it
// produces is paid for, so a small stream that inflates without end (a "zip bomb")
// runs out of budget like any other work, and the object counts as not inspected.
func (s *keyScanner) gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, nil // not gzip after all
	}
	zr.Multistream(false)
	left := s.budget - s.work
	if left <= 0 {
		return nil, s.charge(1)
	}
	// The trailer says how long the stream inflates to (modulo 4 GiB). A stream that
	// says more than the budget can pay for is refused before it is inflated, and one
	// that inflates beyond what it says is refused as soon as it does.
	size := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if size > left {
		return nil, s.charge(left + 1)
	}
	var out bytes.Buffer
	out.Grow(size)
	n, err := io.Copy(&out, io.LimitReader(zr, int64(size)+1))
	if int(n) > size {
		if err := s.charge(int(n)); err != nil {
			return nil, err
		}
		return nil, s.limit("a gzip stream inflates beyond the size its trailer states")
	}
	if chargeErr := s.charge(int(n)); chargeErr != nil {
		return nil, chargeErr
	}
	if err != nil && out.Len() == 0 {
		return nil, nil // corrupt from the start: not a stream a tool would read
	}
	return out.Bytes(), nil
}

// isGzip reports the gzip magic and the deflate method.
func isGzip(b []byte) bool {
	return len(b) >= 18 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 8
}

// examineGzip inflates data and examines what it holds: a key's bytes, or text (or an
// archive) with keys in it.
func (s *keyScanner) examineGzip(data []byte, depth int) error {
	if depth+1 > s.maxDepth {
		return s.limit(fmt.Sprintf("encodings nested deeper than %d levels (privateKeys.maxDecodeDepth)", s.maxDepth))
	}
	out, err := s.gunzip(data)
	if err != nil || len(out) == 0 {
		return err
	}
	// Text, or a tar archive whose files are text: both are scanned as text.
	return s.examineDecoded(out, depth, true)
}
