package config

import (
	"bytes"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// YAML syntax errors.
//
// go.yaml.in/yaml/v3 does not report the line of a problem but the line of
// the construct it was found in (the "context": the mapping, the list, the
// quoted value), counted from 1 for some errors and from 0 for others, and
// no line at all when that construct starts on the first line. So a tab on
// line 3 was reported on line 2, a stray list item on line 3 on line 1, and
// a tab on line 1 on no line.
//
// The line is therefore found again here. The parser reads its input in
// order and stops at the first problem, so the line to fix is the first
// line L such that the file cut after line L already fails with the same
// problem. (A construct left open, like an unclosed quote or bracket, fails
// as soon as the file is cut after the line that opens it: that is the
// line to fix too.)

// linearSearch is how many line counts problemLine tries one by one before
// it bisects the rest of a long file.
const linearSearch = 64

// yamlError turns a YAML syntax error for data into an *Error naming the
// line to fix and what is wrong with it.
func yamlError(file string, data []byte, err error) *Error {
	problem, reported := splitYAMLError(err)
	ends := lineEnds(data)
	line := problemLine(data, ends, problem, reported)
	start := 0
	if line > 1 {
		start = ends[line-2]
	}
	text := data[start:ends[line-1]]
	return &Error{File: file, Line: line, Err: err, Msg: "not valid YAML: " + explain(problem, text)}
}

// splitYAMLError splits a yaml error into its problem and the line the
// library reported (0 for none).
func splitYAMLError(err error) (problem string, line int) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return after, n
			}
		}
	}
	return msg, 0
}

// lineEnds returns the offset just past each line of data (past its
// "\n", or len(data) for a last line without one). It has at least one
// entry.
func lineEnds(data []byte) []int {
	var ends []int
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	return ends
}

// problemLine returns the first line L (1-based) such that data cut after
// line L fails with problem. reported is the library's line: the problem
// is never far before it.
func problemLine(data []byte, ends []int, problem string, reported int) int {
	fails := func(lines int) bool {
		var doc yaml.Node
		err := yaml.Unmarshal(data[:ends[lines-1]], &doc)
		if err == nil {
			return false
		}
		p, _ := splitYAMLError(err)
		return p == problem
	}
	n := len(ends)
	first := min(max(reported-1, 1), n)
	for l := first; l <= n && l < first+linearSearch; l++ {
		if fails(l) {
			return l
		}
	}
	// A long file: bisect the rest. The whole file fails with problem.
	lo, hi := first+linearSearch, n // fails(hi); the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return min(hi, n)
}

// explain returns problem with advice on fixing line.
func explain(problem string, line []byte) string {
	indent := line[:len(line)-len(bytes.TrimLeft(line, " \t"))]
	switch {
	case bytes.IndexByte(indent, '\t') >= 0 && (strings.Contains(problem, "tab character") ||
		problem == "found character that cannot start any token"):
		return "this line is indented with a tab: YAML indents with spaces only, replace the tab with spaces"
	case strings.Contains(problem, "tab character"):
		return problem + ": replace the tab with spaces"
	case problem == "found character that cannot start any token" && bytes.ContainsAny(line, "@`"):
		return problem + ": a value starting with @ or ` must be put in quotes"
	case problem == "mapping values are not allowed in this context":
		return problem + ": check this line's indentation, and put a value that contains \": \" in quotes"
	case problem == "did not find expected key":
		return problem + ": check this line's indentation (keys of one section line up under each other)"
	case problem == "could not find expected ':'":
		return problem + ": write each setting as key: value, on one line"
	case problem == "found unexpected end of stream":
		return "a quote opened on this line is never closed: add the closing quote"
	case problem == "did not find expected ',' or ']'":
		return "a [ opened on this line is never closed: add the closing ]"
	case problem == "did not find expected ',' or '}'":
		return "a { opened on this line is never closed: add the closing }"
	case problem == "control characters are not allowed":
		return "this line holds a control character: remove it (is the file plain text?)"
	}
	return problem
}
