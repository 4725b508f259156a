//go:build !(linux && cgo)

package capture

func compileExpr(expr string, link LinkType, snaplen int) ([]insn, error) {
	if expr != "" {
		return nil, &FilterError{Expr: expr, Msg: "this netobs was built without cgo and libpcap, so it cannot compile filter expressions (rebuild with CGO_ENABLED=1 and libpcap-dev, or capture without a filter)"}
	}
	return []insn{{Code: bpfRET | bpfK, K: uint32(snaplen)}}, nil
}

// FiltersSupported reports whether this build compiles filter expressions.
const FiltersSupported = false
