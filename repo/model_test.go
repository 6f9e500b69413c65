package repo

import "testing"

func TestNormalizeModel(t *testing.T) {
	cases := []struct {
		name, in string
		phi      bool
	}{
		{"exact", "Navios EX", true},
		{"upper case", "NAVIOS EX", true},
		{"lower case", "navios ex", true},
		{"extra inner spaces", "Navios   EX", true},
		{"leading and trailing spaces", "  Navios EX\t", true},
		{"no-break space", "Navios\u00a0EX", true},
		{"full-width letters", "Ｎａｖｉｏｓ ＥＸ", true},
		{"ideographic space", "Navios\u3000EX", true},
		{"long class name, odd case", "data innovations INSTRUMENT manager", true},
		{"another class", "dxflex", true},
		{"not a class", "DxH 900", false},
		{"prefix is not a match", "Navios E", false},
		{"no space is another model", "NaviosEX", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ModelIn(tc.in, DefaultPHIDeviceClasses); got != tc.phi {
				t.Fatalf("ModelIn(%q) = %v (normalized %q), want %v", tc.in, got, NormalizeModel(tc.in), tc.phi)
			}
		})
	}
	// Both sides are normalized: a class typed oddly still matches.
	if !ModelIn("cellmek sps", []string{" CELLMEK  SPS "}) {
		t.Fatal("classes are not normalized")
	}
	if got := NormalizeModel("Caf\u0065\u0301  X"); got != NormalizeModel("Café x") {
		t.Fatalf("NFKC: %q vs %q", got, NormalizeModel("Café x"))
	}
}
