package graph

import (
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/authql/authql/models"
)

// cost is what a selection set asks for: how deeply its fields nest, and
// its complexity: each field counts one plus its selections' complexity
// times the rows it returns (its page size, for a list). It saturates at
// maxCost, so that it cannot overflow.
type cost struct{ depth, complexity int }

const maxCost = 1 << 40

func (c cost) String() string {
	if c.complexity >= maxCost {
		return "beyond " + strconv.Itoa(maxCost)
	}
	return strconv.Itoa(c.complexity)
}

// walker measures an operation. The cost of each fragment is computed once
// and reused at every spread, so the walk is linear in the document's size
// whatever the spreads multiply to. It runs on documents that have not
// been validated yet too: a field the schema lacks counts one, and a
// fragment that spreads itself counts nothing the second time (validation
// refuses the cycle).
type walker struct {
	schema      *ast.Schema
	doc         *ast.QueryDocument
	vars        map[string]any
	known       bool // vars are known: false before gqlgen coerces them
	maxSessions int
	fragments   map[string]cost
	introspects bool
}

func (w *walker) walk(typ *ast.Definition, set ast.SelectionSet) cost {
	var total cost
	for _, sel := range set {
		var c cost
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				w.introspects = true
			}
			var def *ast.FieldDefinition
			var child *ast.Definition
			if typ != nil {
				if def = typ.Fields.ForName(s.Name); def != nil {
					child = w.schema.Types[def.Type.Name()]
				}
			}
			c = w.walk(child, s.SelectionSet)
			c.depth++
			rows := w.rows(typ, def, s)
			if c.complexity > (maxCost-1)/rows {
				c.complexity = maxCost
			} else {
				c.complexity = min(1+rows*c.complexity+loads(typ, def), maxCost)
			}
		case *ast.InlineFragment:
			t := typ
			if s.TypeCondition != "" {
				t = w.schema.Types[s.TypeCondition]
			}
			c = w.walk(t, s.SelectionSet)
		case *ast.FragmentSpread:
			var ok bool
			if c, ok = w.fragments[s.Name]; !ok {
				w.fragments[s.Name] = cost{} // while it is walked: a cycle adds nothing
				if f := w.doc.Fragments.ForName(s.Name); f != nil {
					c = w.walk(w.schema.Types[f.TypeCondition], f.SelectionSet)
				}
				w.fragments[s.Name] = c
			}
		}
		total.depth = max(total.depth, c.depth)
		total.complexity = min(total.complexity+c.complexity, maxCost)
	}
	return total
}

// rows is how many rows field f of typ (defined by def, nil when the schema
// lacks it) may return: a list with a page size argument `first` returns
// that many, its default when absent or null, and at most
// models.MaxPageSize (a larger first is refused by the resolver, and loads
// nothing); mySessions returns at most maxSessions, MfaStatus's factors
// and passkeys their bounds; any other field counts one. Before the variables are known, a page given by a variable counts
// one, the least it can be, so that the count before validation never
// refuses what the count after it would let through.
func (w *walker) rows(typ *ast.Definition, def *ast.FieldDefinition, f *ast.Field) int {
	if def == nil || def.Type.Elem == nil {
		return 1
	}
	if typ == w.schema.Query && def.Name == "mySessions" {
		return w.maxSessions
	}
	if typ.Name == "MfaStatus" {
		// A user's factors and passkeys are bounded by their counts.
		switch def.Name {
		case "factors":
			return models.MaxTotpFactors
		case "passkeys":
			return models.MaxPasskeys
		}
	}
	argDef := def.Arguments.ForName("first")
	if argDef == nil {
		return 1
	}
	n, set := 0, false
	if arg := f.Arguments.ForName("first"); arg != nil {
		v := arg.Value
		if v.Kind == ast.Variable {
			if !w.known {
				return 1
			}
			var val any
			if val, set = w.vars[v.Raw]; set {
				n, set = toInt(val)
			}
		} else if v.Kind == ast.IntValue {
			n, set = toInt(v.Raw)
		} else if v.Kind == ast.NullValue {
			n, set = models.DefaultPageSize, true
		} else {
			return 1 // not an Int: validation refuses it
		}
	}
	if !set {
		n = models.DefaultPageSize
		if argDef.DefaultValue != nil {
			if d, ok := toInt(argDef.DefaultValue.Raw); ok {
				n = d
			}
		}
	}
	return min(max(n, 1), models.MaxPageSize)
}

// loads is how many rows the resolver of field def of typ reads whatever
// is selected of it, beyond the one the field counts: User.mfa reads the
// user's factors and passkeys for any selection, so that a page of users
// with their mfa counts what it costs the database.
func loads(typ *ast.Definition, def *ast.FieldDefinition) int {
	if typ != nil && def != nil && typ.Name == "User" && def.Name == "mfa" {
		return models.MaxTotpFactors + models.MaxPasskeys
	}
	return 0
}

// toInt reads a page size from a coerced variable or a literal; null
// (nil) is not a size.
func toInt(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case int64:
		return int(max(min(v, maxCost), -1)), true
	case float64:
		return int(max(min(v, maxCost), -1)), true
	case interface{ Int64() (int64, error) }: // json.Number
		n, err := v.Int64()
		return int(max(min(n, maxCost), -1)), err == nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return int(max(min(n, maxCost), -1)), err == nil
	}
	return 0, false
}
