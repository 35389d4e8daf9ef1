package enrol

import (
	"errors"
	"fmt"
	"strings"
)

// token is one lexical token of a Nix file: an identifier, a string (with
// its interpolations), one punctuation character or another run of text.
type token struct {
	kind       byte // 'i' identifier, 's' string, 'p' punctuation, 'o' other
	text       string
	start, end int
}

// lexNix splits src into tokens, skipping white space and comments. It
// knows exactly what is needed to find bindings and their ends: strings
// ("…" and ”…”, with ${…} inside), comments (# and /* */), brackets.
func lexNix(src string) ([]token, error) {
	var toks []token
	for i := 0; i < len(src); {
		t, next, err := lexOne(src, i)
		if err != nil {
			return nil, err
		}
		if t.kind != 0 {
			toks = append(toks, t)
		}
		i = next
	}
	return toks, nil
}

// lexOne reads what starts at i: a token, or white space or a comment
// (kind 0), and returns where the next one starts.
func lexOne(src string, i int) (token, int, error) {
	c := src[i]
	switch {
	case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		return token{}, i + 1, nil
	case c == '#':
		return token{}, lineEnd(src, i), nil
	case strings.HasPrefix(src[i:], "/*"):
		j := strings.Index(src[i+2:], "*/")
		if j < 0 {
			return token{}, 0, fmt.Errorf("offset %d: unterminated /* comment", i)
		}
		return token{}, i + j + 4, nil
	case c == '"' || strings.HasPrefix(src[i:], "''"):
		end, err := skipString(src, i)
		if err != nil {
			return token{}, 0, err
		}
		return token{'s', src[i:end], i, end}, end, nil
	case isIdentStart(c):
		j := i + 1
		for j < len(src) && isIdentChar(src[j]) {
			j++
		}
		return token{'i', src[i:j], i, j}, j, nil
	case strings.IndexByte("{}[]();=,", c) >= 0:
		return token{'p', src[i : i+1], i, i + 1}, i + 1, nil
	}
	return token{'o', src[i : i+1], i, i + 1}, i + 1, nil
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '-' || c == '\''
}

// skipString returns the offset just after the string starting at i.
func skipString(src string, i int) (int, error) {
	indented := src[i] == '\''
	j := i + 1
	if indented {
		j = i + 2
	}
	for j < len(src) {
		switch {
		case !indented && src[j] == '\\':
			j += 2
		case !indented && src[j] == '"':
			return j + 1, nil
		case indented && strings.HasPrefix(src[j:], "'''"), indented && strings.HasPrefix(src[j:], "''$"):
			j += 3
		case indented && strings.HasPrefix(src[j:], "''\\"):
			j += 4
		case indented && strings.HasPrefix(src[j:], "''"):
			return j + 2, nil
		case strings.HasPrefix(src[j:], "${"):
			end, err := skipInterpolation(src, j+2)
			if err != nil {
				return 0, err
			}
			j = end
		default:
			j++
		}
	}
	return 0, fmt.Errorf("offset %d: unterminated string", i)
}

// skipInterpolation returns the offset after the } closing a ${ at i-2.
func skipInterpolation(src string, i int) (int, error) {
	depth := 0
	for j := i; j < len(src); {
		t, next, err := lexOne(src, j)
		if err != nil {
			return 0, err
		}
		switch t.text {
		case "{":
			depth++
		case "}":
			if depth == 0 {
				return next, nil
			}
			depth--
		}
		j = next
	}
	return 0, fmt.Errorf("offset %d: unterminated ${", i-2)
}

// binding is one `name = value;` of an attribute set, as byte offsets.
type binding struct {
	name       string
	start, end int // from the name to just after the ;
}

// topLevelSet finds the attribute set a file evaluates to (`{ … }` or
// `let … in { … }`) and returns the offsets of its braces and bindings.
func topLevelSet(src string) (open, close int, bs []binding, err error) {
	toks, err := lexNix(src)
	if err != nil {
		return 0, 0, nil, err
	}
	i := 0
	if len(toks) > 0 && toks[0].text == "let" {
		i = matchingIn(toks) + 1
	}
	if i >= len(toks) || toks[i].text != "{" || toks[len(toks)-1].text != "}" {
		return 0, 0, nil, errors.New("it is not `{ … }` or `let … in { … }`")
	}
	bs, err = bindings(toks[i+1 : len(toks)-1])
	return toks[i].start, toks[len(toks)-1].start, bs, err
}

// matchingIn returns the index of the `in` closing the `let` at toks[0].
func matchingIn(toks []token) int {
	lets := 0
	for i, t := range toks {
		switch t.text {
		case "let":
			lets++
		case "in":
			lets--
			if lets == 0 {
				return i
			}
		}
	}
	return len(toks)
}

// bindings splits the tokens inside an attribute set into its bindings.
func bindings(toks []token) ([]binding, error) {
	var out []binding
	for i := 0; i < len(toks); {
		end, err := bindingEnd(toks, i)
		if err != nil {
			return nil, err
		}
		out = append(out, binding{name: bindingName(toks[i:end]), start: toks[i].start, end: toks[end].end})
		i = end + 1
	}
	return out, nil
}

// bindingEnd returns the index of the ; that ends the binding starting at
// i: one outside brackets and let … in, and not the ; of a `with x;` or
// `assert x;` inside the value.
func bindingEnd(toks []token, i int) (int, error) {
	depth := 0
	var prefixes []int // depths at which a with/assert waits for its ;
	for j := i; j < len(toks); j++ {
		switch t := toks[j].text; {
		case t == "with" || t == "assert":
			prefixes = append(prefixes, depth)
			depth++
		case t == "{" || t == "[" || t == "(" || t == "let":
			depth++
		case t == "}" || t == "]" || t == ")" || t == "in":
			depth--
		case t == ";" && len(prefixes) > 0 && prefixes[len(prefixes)-1] == depth-1:
			prefixes = prefixes[:len(prefixes)-1]
			depth--
		case t == ";" && depth == 0:
			return j, nil
		}
	}
	return 0, fmt.Errorf("offset %d: binding without a closing ;", toks[i].start)
}

// bindingName is the attribute a binding defines: `name = …` or
// `"name" = …`; "" for inherit and dotted paths.
func bindingName(toks []token) string {
	if len(toks) < 2 || toks[1].text != "=" {
		return ""
	}
	switch toks[0].kind {
	case 'i':
		return toks[0].text
	case 's':
		if s := toks[0].text; strings.HasPrefix(s, `"`) && !strings.ContainsAny(s[1:len(s)-1], `\$"`) {
			return s[1 : len(s)-1]
		}
	}
	return ""
}
