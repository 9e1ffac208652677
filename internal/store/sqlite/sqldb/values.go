package sqldb

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/ncruces/go-sqlite3"
)

// bigBinding is the size from which a bound string or []byte is cleared
// from its statement after use.
const bigBinding = 64 << 10

// bind binds args to the statement's parameters 1..n in order.
func (st *stmt) bind(args []any) error {
	for i, a := range args {
		if err := bind(st.s, i+1, a); err != nil {
			return fmt.Errorf("sql: argument %d: %w", i+1, err)
		}
		switch v := a.(type) {
		case string:
			st.big = st.big || len(v) >= bigBinding
		case []byte:
			st.big = st.big || len(v) >= bigBinding
		}
	}
	return nil
}

// bind binds one Go value: integers, floats, booleans, strings, []byte
// (nil binds NULL), nil, a driver.Valuer, or a type whose underlying type
// is one of those.
func bind(s *sqlite3.Stmt, i int, v any) error {
	switch v := v.(type) {
	case nil:
		return s.BindNull(i)
	case int64:
		return s.BindInt64(i, v)
	case int:
		return s.BindInt64(i, int64(v))
	case uint32:
		return s.BindInt64(i, int64(v))
	case int32:
		return s.BindInt64(i, int64(v))
	case uint64:
		if v > math.MaxInt64 {
			return fmt.Errorf("uint64 %d does not fit in an SQLite integer", v)
		}
		return s.BindInt64(i, int64(v))
	case bool:
		return s.BindBool(i, v)
	case float64:
		return s.BindFloat(i, v)
	case string:
		return s.BindText(i, v)
	case []byte:
		if v == nil {
			return s.BindNull(i)
		}
		return s.BindBlob(i, v)
	case driver.Valuer:
		dv, err := v.Value()
		if err != nil {
			return err
		}
		return bind(s, i, dv)
	}
	return bindReflect(s, i, reflect.ValueOf(v))
}

// bindReflect binds a value of a named type by its kind.
func bindReflect(s *sqlite3.Stmt, i int, rv reflect.Value) error {
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return s.BindInt64(i, rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return fmt.Errorf("%s %d does not fit in an SQLite integer", rv.Type(), u)
		}
		return s.BindInt64(i, int64(u))
	case reflect.Bool:
		return s.BindBool(i, rv.Bool())
	case reflect.Float32, reflect.Float64:
		return s.BindFloat(i, rv.Float())
	case reflect.String:
		return s.BindText(i, rv.String())
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			if rv.IsNil() {
				return s.BindNull(i)
			}
			return s.BindBlob(i, rv.Bytes())
		}
	case reflect.Pointer:
		if rv.IsNil() {
			return s.BindNull(i)
		}
		return bind(s, i, rv.Elem().Interface())
	}
	return fmt.Errorf("unsupported type %s", rv.Type())
}

// Buffer is a Scan destination that copies a BLOB or TEXT column into
// B's array (grown when too small), so that one buffer can serve many
// reads; Null reports a NULL (B is then empty).
type Buffer struct {
	B    []byte
	Null bool
}

// scanColumn stores column col of the current row in dest: a pointer to
// an integer, float, bool, string or []byte (a copy), *Buffer (a copy
// into the caller's array), *sql.RawBytes (the
// engine's own bytes, valid until the next Next or Close), *any, an
// sql.Scanner (sql.NullInt64, sql.NullString, …), or a pointer to a type
// whose underlying type is one of those. NULL goes only into []byte,
// RawBytes, any and Scanners, as with database/sql.
func scanColumn(s *sqlite3.Stmt, col int, dest any) error {
	typ := s.ColumnType(col)
	switch d := dest.(type) {
	case *int64:
		n, err := columnInt(s, col, typ)
		*d = n
		return err
	case *int:
		n, err := columnInt(s, col, typ)
		*d = int(n)
		return err
	case *uint32:
		n, err := columnInt(s, col, typ)
		if err != nil {
			return err
		}
		if n < 0 || n > math.MaxUint32 {
			return fmt.Errorf("value %d out of range for uint32", n)
		}
		*d = uint32(n)
		return nil
	case *bool:
		n, err := columnInt(s, col, typ)
		*d = n != 0
		return err
	case *float64:
		if typ == sqlite3.NULL {
			return errNull("float64")
		}
		*d = s.ColumnFloat(col)
		return nil
	case *string:
		if typ == sqlite3.NULL {
			return errNull("string")
		}
		*d = s.ColumnText(col)
		return nil
	case *[]byte:
		if typ == sqlite3.NULL {
			*d = nil
			return nil
		}
		*d = append([]byte{}, columnBytes(s, col, typ)...)
		return nil
	case *Buffer:
		d.B, d.Null = d.B[:0], typ == sqlite3.NULL
		if !d.Null {
			d.B = append(d.B, columnBytes(s, col, typ)...)
		}
		return nil
	case *sql.RawBytes:
		if typ == sqlite3.NULL {
			*d = nil
			return nil
		}
		*d = columnBytes(s, col, typ)
		return nil
	case *any:
		*d = columnValue(s, col, typ)
		return nil
	case sql.Scanner:
		return d.Scan(columnValue(s, col, typ))
	}
	return scanReflect(s, col, typ, dest)
}

// scanReflect stores a column through a pointer to a named type.
func scanReflect(s *sqlite3.Stmt, col int, typ sqlite3.Datatype, dest any) error {
	rv := reflect.ValueOf(dest)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("destination not a pointer: %T", dest)
	}
	e := rv.Elem()
	switch e.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := columnInt(s, col, typ)
		if err != nil {
			return err
		}
		if e.OverflowInt(n) {
			return fmt.Errorf("value %d out of range for %s", n, e.Type())
		}
		e.SetInt(n)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := columnInt(s, col, typ)
		if err != nil {
			return err
		}
		if n < 0 || e.OverflowUint(uint64(n)) {
			return fmt.Errorf("value %d out of range for %s", n, e.Type())
		}
		e.SetUint(uint64(n))
		return nil
	case reflect.String:
		if typ == sqlite3.NULL {
			return errNull(e.Type().String())
		}
		e.SetString(s.ColumnText(col))
		return nil
	case reflect.Slice:
		if e.Type().Elem().Kind() == reflect.Uint8 {
			if typ == sqlite3.NULL {
				e.SetZero()
				return nil
			}
			e.SetBytes(append([]byte{}, columnBytes(s, col, typ)...))
			return nil
		}
	}
	return fmt.Errorf("unsupported Scan destination %T", dest)
}

func errNull(to string) error {
	return fmt.Errorf("converting NULL to %s is unsupported", to)
}

// columnInt reads an integer column; text must spell an integer.
func columnInt(s *sqlite3.Stmt, col int, typ sqlite3.Datatype) (int64, error) {
	switch typ {
	case sqlite3.INTEGER:
		return s.ColumnInt64(col), nil
	case sqlite3.NULL:
		return 0, errNull("integer")
	case sqlite3.FLOAT:
		f := s.ColumnFloat(col)
		if f != math.Trunc(f) {
			return 0, fmt.Errorf("converting %v to an integer loses its fraction", f)
		}
		return int64(f), nil
	}
	t := s.ColumnText(col)
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("converting %q to an integer: %w", t, err)
	}
	return n, nil
}

// columnBytes is a TEXT or BLOB column's bytes without a copy (SQLite
// renders numbers as text).
func columnBytes(s *sqlite3.Stmt, col int, typ sqlite3.Datatype) []byte {
	if typ == sqlite3.BLOB {
		return s.ColumnRawBlob(col)
	}
	return s.ColumnRawText(col)
}

// columnValue is a column as database/sql's drivers give it: int64,
// float64, string, []byte (a copy) or nil.
func columnValue(s *sqlite3.Stmt, col int, typ sqlite3.Datatype) any {
	switch typ {
	case sqlite3.INTEGER:
		return s.ColumnInt64(col)
	case sqlite3.FLOAT:
		return s.ColumnFloat(col)
	case sqlite3.TEXT:
		return s.ColumnText(col)
	case sqlite3.BLOB:
		return append([]byte{}, s.ColumnRawBlob(col)...)
	}
	return nil
}
