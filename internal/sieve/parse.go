package sieve

// The grammar of RFC 5228 §8.2, parsed into a generic tree that check.go
// then validates against the command table.

type argKind int

const (
	argNone argKind = iota
	argNumber
	argString     // exactly one string
	argStringList // a string list (a single string is a list of one)
	argTag
)

func (k argKind) String() string {
	switch k {
	case argNumber:
		return "a number"
	case argString:
		return "a string"
	case argStringList:
		return "a string list"
	case argTag:
		return "a tagged argument"
	}
	return "nothing"
}

// argument is one argument as written. A single string has kind
// argString and strs of length 1; "[...]" has kind argStringList.
type argument struct {
	pos  pos
	kind argKind
	tag  string
	num  uint64
	strs []string
}

// syntaxNode is a command or a test as written.
type syntaxNode struct {
	pos      pos
	name     string
	args     []argument
	tests    []*syntaxNode // a single test (if, not) or a test list (allof, anyof)
	testList bool          // tests came in "( ... )"
	block    []*syntaxNode
	hasBlock bool
}

type parser struct {
	lx       *lexer
	tok      token
	maxDepth int
	// budget bounds the number of nodes and strings (a script of n bytes
	// cannot have more than n of them, but keep a hard bound anyway).
	budget int
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) errorf(at pos, format string, args ...any) error {
	return p.lx.errorf(at, format, args...)
}

func (p *parser) expect(k tokKind) error {
	if p.tok.kind != k {
		return p.errorf(p.tok.pos, "expected %s, found %s", k, p.describe())
	}
	return p.advance()
}

func (p *parser) describe() string {
	switch p.tok.kind {
	case tIdent:
		return "identifier \"" + p.tok.text + "\""
	case tTag:
		return "tag \":" + p.tok.text + "\""
	}
	return p.tok.kind.String()
}

func (p *parser) spend(at pos) error {
	p.budget--
	if p.budget < 0 {
		return p.errorf(at, "script too complex")
	}
	return nil
}

// parseScript parses commands up to the end of the script.
func parseScript(src []byte, maxDepth int) ([]*syntaxNode, error) {
	p := &parser{lx: newLexer(src), maxDepth: maxDepth, budget: 1 << 20}
	if err := p.advance(); err != nil {
		return nil, err
	}
	cmds, err := p.commands(0)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errorf(p.tok.pos, "expected a command, found %s", p.describe())
	}
	return cmds, nil
}

func (p *parser) commands(depth int) ([]*syntaxNode, error) {
	var out []*syntaxNode
	for p.tok.kind == tIdent {
		c, err := p.command(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (p *parser) command(depth int) (*syntaxNode, error) {
	n := &syntaxNode{pos: p.tok.pos, name: p.tok.text}
	if err := p.spend(n.pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.arguments(n, depth); err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tSemicolon:
		return n, p.advance()
	case tLBrace:
		if depth+1 > p.maxDepth {
			return nil, p.errorf(p.tok.pos, "blocks nested deeper than %d", p.maxDepth)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		block, err := p.commands(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRBrace {
			return nil, p.errorf(p.tok.pos, "expected a command or \"}\", found %s", p.describe())
		}
		n.block, n.hasBlock = block, true
		return n, p.advance()
	}
	return nil, p.errorf(p.tok.pos, "expected \";\" or a block after %s, found %s", n.name, p.describe())
}

// arguments reads *argument [test / test-list] into n.
func (p *parser) arguments(n *syntaxNode, depth int) error {
	for {
		a := argument{pos: p.tok.pos}
		switch p.tok.kind {
		case tTag:
			a.kind, a.tag = argTag, p.tok.text
		case tNumber:
			a.kind, a.num = argNumber, p.tok.num
		case tString:
			a.kind, a.strs = argString, []string{p.tok.text}
		case tLBracket:
			list, err := p.stringList()
			if err != nil {
				return err
			}
			n.args = append(n.args, list)
			continue
		default:
			return p.tests(n, depth)
		}
		if err := p.spend(a.pos); err != nil {
			return err
		}
		n.args = append(n.args, a)
		if err := p.advance(); err != nil {
			return err
		}
	}
}

func (p *parser) stringList() (argument, error) {
	a := argument{pos: p.tok.pos, kind: argStringList}
	if err := p.advance(); err != nil {
		return a, err
	}
	for {
		if p.tok.kind != tString {
			return a, p.errorf(p.tok.pos, "expected a string in the list, found %s", p.describe())
		}
		if err := p.spend(p.tok.pos); err != nil {
			return a, err
		}
		a.strs = append(a.strs, p.tok.text)
		if err := p.advance(); err != nil {
			return a, err
		}
		if p.tok.kind == tRBracket {
			return a, p.advance()
		}
		if err := p.expect(tComma); err != nil {
			return a, err
		}
	}
}

func (p *parser) tests(n *syntaxNode, depth int) error {
	switch p.tok.kind {
	case tIdent:
		t, err := p.test(depth + 1)
		if err != nil {
			return err
		}
		n.tests = []*syntaxNode{t}
	case tLParen:
		n.testList = true
		if err := p.advance(); err != nil {
			return err
		}
		for {
			if p.tok.kind != tIdent {
				return p.errorf(p.tok.pos, "expected a test, found %s", p.describe())
			}
			t, err := p.test(depth + 1)
			if err != nil {
				return err
			}
			n.tests = append(n.tests, t)
			if p.tok.kind == tRParen {
				return p.advance()
			}
			if err := p.expect(tComma); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *parser) test(depth int) (*syntaxNode, error) {
	if depth > p.maxDepth {
		return nil, p.errorf(p.tok.pos, "tests nested deeper than %d", p.maxDepth)
	}
	t := &syntaxNode{pos: p.tok.pos, name: p.tok.text}
	if err := p.spend(t.pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	return t, p.arguments(t, depth)
}
