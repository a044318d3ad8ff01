package browsertest_test

import (
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
)

// contrastScript lists the texts of the page whose contrast against
// their background is below WCAG 2's AA level: 4.5:1, or 3:1 for large
// text (24 px, or 18.66 px bold). The background is the first opaque one
// of the element and its ancestors; disabled controls are exempt, as the
// guidelines exempt them.
const contrastScript = `(() => {
	const rgb = (c) => { const m = c.match(/[\d.]+/g) || []; return m.map(Number); };
	const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
		return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
	const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
		if (c.length >= 3 && (c.length < 4 || c[3] >= 0.99)) return c; } return [255, 255, 255]; };
	const bad = [];
	const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (let n = walker.nextNode(); n; n = walker.nextNode()) {
		const el = n.parentElement;
		if (!n.textContent.trim() || !el || el.closest('[disabled], [aria-hidden="true"], svg')) continue;
		const r = el.getBoundingClientRect(), s = getComputedStyle(el);
		if (!r.width || !r.height || s.visibility === 'hidden' || parseFloat(s.opacity) === 0) continue;
		const fg = rgb(s.color), b = bg(el);
		const [l1, l2] = [lum(fg), lum(b)].sort((x, y) => y - x);
		const ratio = (l1 + 0.05) / (l2 + 0.05);
		const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
		const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
		if (ratio < need) bad.push(ratio.toFixed(2) + ' ' + el.tagName.toLowerCase() + '.' + el.className + ' "' + n.textContent.trim().slice(0, 30) + '"');
	}
	return [...new Set(bad)].slice(0, 20);
})()`

// Every page's text is readable: AA contrast against its background.
func TestContrast(t *testing.T) {
	a := browsertest.StartAgent(t)
	sim := a.Simulate(1, "contrast", nil)
	id := a.DeviceID(sim.Endpoints()[0])
	group := groupOf(t, a, id)
	b := browsertest.NewBrowser(t, a)
	check := func(route string) {
		var bad []string
		b.Eval(contrastScript, &bad)
		if len(bad) > 0 {
			t.Errorf("%s: text below AA contrast:\n%s", route, strings.Join(bad, "\n"))
		}
	}
	b.Open("/login")
	b.WaitVisible("#main input[name=password]")
	check("/login")
	b.Login("management", "admin", browsertest.AdminPassword)
	for _, p := range everyPage(id, group) {
		b.Go(p.route)
		b.WaitVisible(p.ready)
		b.WaitGone("#main .loading")
		check(p.route)
	}
}
