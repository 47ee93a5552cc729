package mirrorlists

import (
	"cmp"
	"slices"
	"strings"
	"unicode"
)

// SameCountry reports whether a and b name the same country: case, accents and extra
// spaces do not matter, "_" stands for a space (as in file names), and a few renamed
// countries match their former or common names ("Czech Republic" = "Czechia").
func SameCountry(a, b string) bool { return countryKey(a) == countryKey(b) }

// countryAliases maps normalised former or colloquial names to the name archlinux.org
// uses now (normalised). Both mirrorlists and the status JSON follow archlinux.org's
// naming, which follows ISO 3166 short names with a few simplifications.
var countryAliases = map[string]string{
	"czech republic":            "czechia",
	"macedonia":                 "north macedonia",
	"republic of macedonia":     "north macedonia",
	"swaziland":                 "eswatini",
	"turkiye":                   "turkey",
	"burma":                     "myanmar",
	"ivory coast":               "cote d'ivoire",
	"cape verde":                "cabo verde",
	"usa":                       "united states",
	"united states of america":  "united states",
	"uk":                        "united kingdom",
	"great britain":             "united kingdom",
	"russian federation":        "russia",
	"korea":                     "south korea",
	"republic of korea":         "south korea",
	"korea, republic of":        "south korea",
	"viet nam":                  "vietnam",
	"iran, islamic republic of": "iran",
	"moldova, republic of":      "moldova",
	"republic of moldova":       "moldova",
	"the netherlands":           "netherlands",
	"holland":                   "netherlands",
	"hong kong sar":             "hong kong",
}

// countryKey normalises a country name for comparison.
func countryKey(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == '_' || r == '-' || unicode.IsSpace(r):
			space = true
			continue
		case r == '\u2019': // ’
			r = '\''
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(foldAccent(unicode.ToLower(r)))
	}
	k := b.String()
	if a, ok := countryAliases[k]; ok {
		return a
	}
	return k
}

// foldAccent maps the accented Latin letters found in country names to plain ones
// ("Réunion", "Curaçao", "Åland", "Türkiye").
func foldAccent(r rune) string {
	if r < 128 {
		return string(r)
	}
	for plain, accented := range accents {
		if strings.ContainsRune(accented, r) {
			return plain
		}
	}
	return string(r)
}

var accents = map[string]string{
	"a": "àáâãäåā", "c": "çćč", "e": "èéêëēė", "i": "ìíîïī", "n": "ñń", "o": "òóôõöøō",
	"u": "ùúûüū", "y": "ýÿ", "s": "śš", "z": "źżž", "l": "ł", "ae": "æ", "ss": "ß",
}

// nearest orders names by edit distance to q (ties keep their order).
func nearest(q string, names []string) []string {
	type scored struct {
		name string
		d    int
	}
	k := countryKey(q)
	all := make([]scored, len(names))
	for i, n := range names {
		all[i] = scored{n, distance(k, countryKey(n))}
	}
	slices.SortStableFunc(all, func(a, b scored) int { return cmp.Compare(a.d, b.d) })
	out := make([]string, len(all))
	for i, s := range all {
		out[i] = s.name
	}
	return out
}

// distance is the Levenshtein distance between a and b, in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
