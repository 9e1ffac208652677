package delivery

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tern-imap/tern/imap"
)

// Maildir (https://cr.yp.to/proto/maildir.html) as Dovecot writes it:
// messages in cur/ and new/, flags after ":2," in the file name, keywords
// as lower-case letters indexed by dovecot-keywords, message order (UIDs)
// in dovecot-uidlist, folders as Maildir++ ".Sub.Folder" directories with
// names in modified UTF-7.

// maildirFlags maps file name flag letters to IMAP flags (ASCII order).
var maildirFlags = []struct {
	letter byte
	flag   string
}{
	{'D', `\Draft`},
	{'F', `\Flagged`},
	{'P', "$Forwarded"},
	{'R', `\Answered`},
	{'S', `\Seen`},
	{'T', `\Deleted`},
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// isMaildir reports whether dir holds a Maildir (cur/ or new/).
func isMaildir(dir string) bool {
	return isDir(filepath.Join(dir, "cur")) || isDir(filepath.Join(dir, "new"))
}

// decodeFolderName turns an on-disk name (modified UTF-7, as Dovecot
// writes it) into UTF-8; names that are not valid modified UTF-7 are
// taken as they are.
func decodeFolderName(s string) string {
	if d, err := imap.DecodeMUTF7(s); err == nil {
		return d
	}
	return s
}

// scanMaildir lists the folders of a Maildir root: the root itself,
// Maildir++ ".A.B" folders and, for LAYOUT=fs, nested directories.
func scanMaildir(root string) ([]srcFolder, error) {
	var out []srcFolder
	var walk func(dir, name string, top bool) error
	walk = func(dir, name string, top bool) error {
		if isMaildir(dir) {
			f, err := maildirFolder(dir, name)
			if err != nil {
				return err
			}
			out = append(out, f)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			n := e.Name()
			if !e.IsDir() || n == "cur" || n == "new" || n == "tmp" {
				continue
			}
			sub := filepath.Join(dir, n)
			if strings.HasPrefix(n, ".") {
				// Maildir++ folder (only at the top); dot-directories elsewhere
				// are not mail.
				if !top || n == "." || n == ".." || !isMaildir(sub) {
					continue
				}
				parts := strings.Split(n[1:], ".")
				for i, p := range parts {
					parts[i] = decodeFolderName(p)
				}
				if slices.Contains(parts, "") {
					continue
				}
				f, err := maildirFolder(sub, joinName(name, strings.Join(parts, "/")))
				if err != nil {
					return err
				}
				out = append(out, f)
				continue
			}
			if err := walk(sub, joinName(name, decodeFolderName(n)), false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, "", true); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b srcFolder) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func joinName(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}

type maildirFile struct {
	path string
	base string // unique part, without ":2,..."
	info string // flag letters after ":2,"
	uid  uint32 // from dovecot-uidlist; 0 if not listed
	ts   int64  // leading timestamp of the name
	size int64
	mt   time.Time
}

// maildirFolder lists one Maildir's messages in their order.
func maildirFolder(dir, name string) (srcFolder, error) {
	var files []maildirFile
	var total int64
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return srcFolder{}, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				return srcFolder{}, err
			}
			mf := maildirFile{path: filepath.Join(dir, sub, e.Name()), size: fi.Size(), mt: fi.ModTime()}
			mf.base, mf.info = splitMaildirName(e.Name())
			if sub == "new" {
				mf.info = "" // not yet seen by any client
			}
			if i := strings.IndexByte(mf.base, '.'); i > 0 {
				mf.ts, _ = strconv.ParseInt(mf.base[:i], 10, 64)
			}
			files = append(files, mf)
			total += mf.size
		}
	}
	uids := readUIDList(filepath.Join(dir, "dovecot-uidlist"))
	for i := range files {
		files[i].uid = uids[files[i].base]
	}
	// Listed messages in UID order first, then the rest by time and name.
	slices.SortFunc(files, func(a, b maildirFile) int {
		switch {
		case a.uid != 0 && b.uid != 0:
			return cmpInt(int64(a.uid), int64(b.uid))
		case a.uid != 0:
			return -1
		case b.uid != 0:
			return 1
		case a.ts != b.ts:
			return cmpInt(a.ts, b.ts)
		}
		return strings.Compare(a.base, b.base)
	})
	keywords := readKeywords(filepath.Join(dir, "dovecot-keywords"))
	each := func(fn func(srcMessage) error) error {
		for _, f := range files {
			data, err := os.ReadFile(f.path)
			if err != nil {
				if os.IsNotExist(err) {
					continue // moved or expunged by a running MDA/MUA
				}
				return err
			}
			m := srcMessage{body: ToCRLF(data), flags: maildirFlagList(f.info, keywords), size: f.size}
			m.date = f.mt
			if m.date.IsZero() || m.date.Unix() <= 0 {
				m.date = time.Unix(f.ts, 0)
			}
			if err := fn(m); err != nil {
				return err
			}
		}
		return nil
	}
	return srcFolder{name: name, count: len(files), bytes: total, each: each}, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// splitMaildirName splits "unique:2,FS" into "unique" and "FS". Besides
// ':' the separators ';' and '!' used on some file systems are accepted.
func splitMaildirName(n string) (base, info string) {
	for _, sep := range []string{":2,", ";2,", "!2,"} {
		if i := strings.LastIndex(n, sep); i >= 0 {
			return n[:i], n[i+len(sep):]
		}
	}
	for _, sep := range []string{":", ";", "!"} { // ":1,..." or a bare separator
		if i := strings.LastIndex(n, sep); i >= 0 {
			return n[:i], ""
		}
	}
	return n, ""
}

func maildirFlagList(info string, keywords map[int]string) []string {
	var out []string
	for i := 0; i < len(info); i++ {
		c := info[i]
		switch {
		case c >= 'a' && c <= 'z':
			if k, ok := keywords[int(c-'a')]; ok {
				out = append(out, k)
			}
		default:
			for _, mf := range maildirFlags {
				if mf.letter == c {
					out = append(out, mf.flag)
				}
			}
		}
	}
	return out
}

// readKeywords reads dovecot-keywords: lines "index keyword".
func readKeywords(p string) map[int]string {
	out := map[int]string{}
	f, err := os.Open(p)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		idx, kw, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n > 25 || !validKeyword(kw) {
			continue
		}
		out[n] = kw
	}
	return out
}

// validKeyword reports whether k can be an IMAP keyword (an atom).
func validKeyword(k string) bool {
	if k == "" || len(k) > 255 || strings.HasPrefix(k, `\`) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// readUIDList reads dovecot-uidlist (version 1 or 3) into base name ->
// UID. A missing or unreadable file gives an empty map.
func readUIDList(p string) map[string]uint32 {
	out := map[string]uint32{}
	f, err := os.Open(p)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first { // header: "3 V<uidvalidity> N<next> ..." or "1 <uidvalidity> <next>"
			first = false
			continue
		}
		uidStr, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		uid, err := strconv.ParseUint(uidStr, 10, 32)
		if err != nil || uid == 0 {
			continue
		}
		name := rest
		if i := strings.Index(rest, ":"); i >= 0 { // v3: extension fields, then ":name"
			name = rest[i+1:]
		} else if f := strings.Fields(rest); len(f) > 0 {
			name = f[len(f)-1]
		}
		base, _ := splitMaildirName(name)
		out[base] = uint32(uid)
	}
	return out
}
