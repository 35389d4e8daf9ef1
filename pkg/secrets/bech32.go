package secrets

import (
	"errors"
	"strings"
)

// bech32Charset is the BIP 173 alphabet age uses for its keys.
const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

var bech32Gen = [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}

func bech32Polymod(values []byte) uint32 {
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if (top>>uint(i))&1 == 1 {
				chk ^= bech32Gen[i]
			}
		}
	}
	return chk
}

func bech32HRPExpand(hrp string) []byte {
	out := make([]byte, 0, len(hrp)*2+1)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]&31)
	}
	return out
}

// to5bit regroups 8-bit bytes into 5-bit groups, padding the last one.
func to5bit(data []byte) []byte {
	var out []byte
	acc, bits := uint32(0), uint(0)
	for _, b := range data {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(5-bits))&31)
	}
	return out
}

// bech32Encode encodes data with the human-readable part hrp. age keys are
// longer than BIP 173's 90 characters, so no length limit is applied, and
// the case of hrp is kept (age secret keys are upper case).
func bech32Encode(hrp string, data []byte) (string, error) {
	lower := strings.ToLower(hrp)
	if lower != hrp && strings.ToUpper(hrp) != hrp {
		return "", errors.New("bech32: mixed-case human-readable part")
	}
	values := to5bit(data)
	poly := append(bech32HRPExpand(lower), values...)
	poly = append(poly, 0, 0, 0, 0, 0, 0)
	mod := bech32Polymod(poly) ^ 1
	var sb strings.Builder
	sb.WriteString(lower)
	sb.WriteByte('1')
	for _, v := range values {
		sb.WriteByte(bech32Charset[v])
	}
	for i := 0; i < 6; i++ {
		sb.WriteByte(bech32Charset[(mod>>uint(5*(5-i)))&31])
	}
	if lower != hrp {
		return strings.ToUpper(sb.String()), nil
	}
	return sb.String(), nil
}
