package store

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/amwi/amwi/daemon/auth"
)

// badRecord says why the record k → v of the bucket at path does not decode as the store
// wrote it ("" when it does, or when the bucket is not one this store knows). bbolt checks
// pages, not values: a flipped bit inside a value shows only here.
func badRecord(path [][]byte, k, v []byte) string {
	if len(path) != 1 {
		return ""
	}
	switch string(path[0]) {
	case string(bucketMeta):
		if string(k) == "schema" {
			if _, err := strconv.Atoi(string(v)); err != nil {
				return "schema version is not a number"
			}
		}
	case string(bucketUsers):
		var u auth.User
		if err := json.Unmarshal(v, &u); err != nil {
			return "does not decode: " + err.Error()
		}
		if u.Name != string(k) {
			return "names another user"
		}
	case string(bucketSessions):
		var s auth.Session
		if err := json.Unmarshal(v, &s); err != nil {
			return "does not decode: " + err.Error()
		}
	case string(bucketRuns):
		if len(k) != 8 {
			return "key is not a run id"
		}
		if !json.Valid(v) {
			return "does not decode"
		}
	case string(bucketTrafficHours):
		if len(k) != 8 {
			return "key is not an hour"
		}
		return badCount(v)
	case string(bucketTrafficDays):
		if len(k) != 4 {
			return "key is not a day"
		}
		return badCount(v)
	case string(bucketTrafficClients), string(bucketTrafficPackages), string(bucketTrafficRepos):
		if len(k) <= 4 {
			return "key is not a day and a name"
		}
		return badCount(v)
	}
	return ""
}

func badCount(v []byte) string {
	if _, ok := decodeCount(v); !ok {
		return "count does not decode"
	}
	return ""
}

// userNames returns the account names a damaged record of the accounts bucket still
// carries, as far as they can be read: its key, and the "name" of its value (the JSON's
// first value, whatever follows it; else the text after "name":"). Only valid account
// names count: a key cut short or run into its value names nobody.
func userNames(k, v []byte) []string {
	var out []string
	add := func(name string) {
		if auth.ValidateName(name) == nil && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	add(string(k))
	var u struct {
		Name string `json:"name"`
	}
	if json.NewDecoder(bytes.NewReader(v)).Decode(&u) == nil {
		add(u.Name)
	} else if _, rest, ok := bytes.Cut(v, []byte(`"name":"`)); ok {
		if name, _, ok := bytes.Cut(rest, []byte(`"`)); ok {
			add(string(name))
		}
	}
	return out
}
