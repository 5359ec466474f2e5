package analyze

// elemRing is one element of a class's recent chain and its ring.
type elemRing struct {
	k elemKey
	r *ring
}

// elemRing returns the ring of the element at position i of a chain,
// creating it if needed. The RPCs of one class nearly always have the
// same chain, element for element, so the ring found at position i for
// the previous RPC is checked before the map: comparing two keys costs
// less than hashing one, and class.add runs for every element of every
// RPC, twice.
func (c *class) elemRing(i int, k elemKey) *ring {
	if i < len(c.recent) && c.recent[i].k == k {
		return c.recent[i].r
	}
	rg := c.elems[k]
	if rg == nil {
		rg = &ring{}
		c.elems[k] = rg
	}
	if i < len(c.recent) {
		c.recent[i] = elemRing{k, rg}
	} else if i == len(c.recent) {
		c.recent = append(c.recent, elemRing{k, rg})
	}
	return rg
}
