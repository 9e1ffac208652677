package sieve

// The command and test table: which tagged and positional arguments each
// takes and which extension it needs (RFC 5228 and the extensions).

type tagSpec struct {
	arg   argKind // argNone for a flag
	group string  // tags of one group exclude each other
	ext   string  // extension the tag needs ("" = the command's own)
}

type spec struct {
	ext     string // extension that must be required ("" = base)
	tags    map[string]tagSpec
	args    []argKind // positional arguments; the first len(args)-minArgs are optional
	minArgs int
	tests   int  // 0: none, 1: one test, -1: a test list
	block   bool // takes a block
}

func merge(ms ...map[string]tagSpec) map[string]tagSpec {
	out := map[string]tagSpec{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

var (
	comparatorTags = map[string]tagSpec{"comparator": {arg: argString, group: "comparator"}}
	matchTags      = map[string]tagSpec{
		"is":       {group: "match"},
		"contains": {group: "match"},
		"matches":  {group: "match"},
		"regex":    {group: "match", ext: "regex"},
		"value":    {arg: argString, group: "match", ext: "relational"},
		"count":    {arg: argString, group: "match", ext: "relational"},
	}
	addressPartTags = map[string]tagSpec{
		"all":       {group: "address-part"},
		"localpart": {group: "address-part"},
		"domain":    {group: "address-part"},
		"user":      {group: "address-part", ext: "subaddress"},
		"detail":    {group: "address-part", ext: "subaddress"},
	}
	indexTags = map[string]tagSpec{
		"index": {arg: argNumber, ext: "index"},
		"last":  {ext: "index"},
	}
	zoneTags = map[string]tagSpec{
		"zone":         {arg: argString, group: "zone"},
		"originalzone": {group: "zone"},
	}
	matchingTags = merge(comparatorTags, matchTags)
)

var commands = map[string]*spec{
	"require": {args: []argKind{argStringList}, minArgs: 1},
	"if":      {tests: 1, block: true},
	"elsif":   {tests: 1, block: true},
	"else":    {block: true},
	"stop":    {},
	"keep":    {tags: map[string]tagSpec{"flags": {arg: argStringList, ext: "imap4flags"}}},
	"discard": {},
	"fileinto": {ext: "fileinto", args: []argKind{argString}, minArgs: 1, tags: map[string]tagSpec{
		"copy":       {ext: "copy"},
		"flags":      {arg: argStringList, ext: "imap4flags"},
		"create":     {ext: "mailbox"},
		"specialuse": {arg: argString, ext: "special-use"},
		"mailboxid":  {arg: argString, ext: "mailboxid"},
	}},
	"redirect": {args: []argKind{argString}, minArgs: 1, tags: map[string]tagSpec{"copy": {ext: "copy"}}},
	"reject":   {ext: "reject", args: []argKind{argString}, minArgs: 1},
	"ereject":  {ext: "ereject", args: []argKind{argString}, minArgs: 1},
	"vacation": {ext: "vacation", args: []argKind{argString}, minArgs: 1, tags: map[string]tagSpec{
		"days":      {arg: argNumber, group: "period"},
		"seconds":   {arg: argNumber, group: "period", ext: "vacation-seconds"},
		"subject":   {arg: argString},
		"from":      {arg: argString},
		"addresses": {arg: argStringList},
		"mime":      {},
		"handle":    {arg: argString},
	}},
	"setflag":    {ext: "imap4flags", args: []argKind{argString, argStringList}, minArgs: 1},
	"addflag":    {ext: "imap4flags", args: []argKind{argString, argStringList}, minArgs: 1},
	"removeflag": {ext: "imap4flags", args: []argKind{argString, argStringList}, minArgs: 1},
	"set": {ext: "variables", args: []argKind{argString, argString}, minArgs: 2, tags: map[string]tagSpec{
		"lower":         {group: "case"},
		"upper":         {group: "case"},
		"lowerfirst":    {group: "casefirst"},
		"upperfirst":    {group: "casefirst"},
		"quotewildcard": {},
		"quoteregex":    {ext: "regex"},
		"length":        {},
	}},
	"addheader": {ext: "editheader", args: []argKind{argString, argString}, minArgs: 2, tags: map[string]tagSpec{"last": {}}},
	"deleteheader": {ext: "editheader", args: []argKind{argString, argStringList}, minArgs: 1, tags: merge(matchingTags, map[string]tagSpec{
		"index": {arg: argNumber},
		"last":  {},
	})},
	"include": {ext: "include", args: []argKind{argString}, minArgs: 1, tags: map[string]tagSpec{
		"personal": {group: "location"},
		"global":   {group: "location"},
		"once":     {},
		"optional": {},
	}},
	"return": {ext: "include"},
	"global": {ext: "include", args: []argKind{argStringList}, minArgs: 1},
}

var tests = map[string]*spec{
	"true":    {},
	"false":   {},
	"not":     {tests: 1},
	"allof":   {tests: -1},
	"anyof":   {tests: -1},
	"address": {args: []argKind{argStringList, argStringList}, minArgs: 2, tags: merge(matchingTags, addressPartTags, indexTags)},
	"header":  {args: []argKind{argStringList, argStringList}, minArgs: 2, tags: merge(matchingTags, indexTags)},
	"envelope": {ext: "envelope", args: []argKind{argStringList, argStringList}, minArgs: 2,
		tags: merge(matchingTags, addressPartTags)},
	"exists": {args: []argKind{argStringList}, minArgs: 1},
	"size": {tags: map[string]tagSpec{
		"over":  {arg: argNumber, group: "size"},
		"under": {arg: argNumber, group: "size"},
	}},
	"body": {ext: "body", args: []argKind{argStringList}, minArgs: 1, tags: merge(matchingTags, map[string]tagSpec{
		"raw":     {group: "transform"},
		"content": {arg: argStringList, group: "transform"},
		"text":    {group: "transform"},
	})},
	"string":  {ext: "variables", args: []argKind{argStringList, argStringList}, minArgs: 2, tags: matchingTags},
	"hasflag": {ext: "imap4flags", args: []argKind{argStringList, argStringList}, minArgs: 1, tags: matchingTags},
	"date": {ext: "date", args: []argKind{argString, argString, argStringList}, minArgs: 3,
		tags: merge(matchingTags, indexTags, zoneTags)},
	"currentdate": {ext: "date", args: []argKind{argString, argStringList}, minArgs: 2,
		tags: merge(matchingTags, map[string]tagSpec{"zone": {arg: argString}})},
	"environment":       {ext: "environment", args: []argKind{argString, argStringList}, minArgs: 2, tags: matchingTags},
	"mailboxexists":     {ext: "mailbox", args: []argKind{argStringList}, minArgs: 1},
	"specialuse_exists": {ext: "special-use", args: []argKind{argString, argStringList}, minArgs: 1},
	"mailboxidexists":   {ext: "mailboxid", args: []argKind{argStringList}, minArgs: 1},
	"duplicate": {ext: "duplicate", tags: map[string]tagSpec{
		"handle":   {arg: argString},
		"header":   {arg: argString, group: "id"},
		"uniqueid": {arg: argString, group: "id"},
		"seconds":  {arg: argNumber},
		"last":     {},
	}},
}
