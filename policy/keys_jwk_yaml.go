package policy

import (
	"bytes"
	"encoding/json"
)

// JWKs written as YAML ("kty: EC" and "d: ..." on lines of their own, as in Helm values
// or a configuration file): each block of "name: value" lines that names a kty is
// turned into the JSON object it stands for and walked as a JWK.

// scanJWKYAML finds the blocks of text whose lines are "name: value" pairs at one
// indentation (a "- " list item starts a block of its own) and walks those with a kty.
func (s *keyScanner) scanJWKYAML(text []byte, depth int) error {
	if err := s.charge(len(text)); err != nil {
		return err
	}
	var members map[string]string
	indent := -1
	flush := func() error {
		if _, ok := members["kty"]; ok && len(members) > 1 {
			obj, err := json.Marshal(members)
			if err == nil {
				if _, err := s.walkNested(obj, depth); err != nil {
					return err
				}
			}
		}
		members, indent = nil, -1
		return nil
	}
	for line := range textLines(text) {
		name, value, at, item, ok := yamlMember(line)
		if !ok || item || at != indent {
			if err := flush(); err != nil {
				return err
			}
		}
		if !ok {
			continue
		}
		if members == nil {
			members = map[string]string{}
		}
		indent = at
		if len(members) < 64 {
			members[string(name)] = string(value)
		}
	}
	return flush()
}

// yamlMember reads a line "  name: value" or "- name: value": the name, the value
// without quotes, where the name starts and whether the line starts a list item.
func yamlMember(line []byte) (name, value []byte, at int, item, ok bool) {
	line = bytes.TrimRight(line, " \t\r")
	for at < len(line) && line[at] == ' ' {
		at++
	}
	if bytes.HasPrefix(line[at:], []byte("- ")) {
		item = true
		at += 2
		for at < len(line) && line[at] == ' ' {
			at++
		}
	}
	rest := line[at:]
	c := bytes.IndexByte(rest, ':')
	if c <= 0 {
		return nil, nil, 0, false, false
	}
	name = rest[:c]
	for _, ch := range name {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_') {
			return nil, nil, 0, false, false
		}
	}
	value = bytes.TrimSpace(rest[c+1:])
	if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
		value = value[1 : len(value)-1]
	}
	return name, value, at, item, true
}
