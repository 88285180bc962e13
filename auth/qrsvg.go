package auth

import (
	"encoding/base64"
	"fmt"
	"strings"

	"rsc.io/qr"
)

// qrQuiet is the quiet zone around a QR code, in modules: the 4 that the
// standard (ISO/IEC 18004) asks for, without which some scanners fail.
const qrQuiet = 4

// qrCodeDataURI returns text as a QR code: an SVG image (black modules on
// white, one path) as a data: URI that an <img src> shows. Level M
// corrects 15% damage, plenty for a screen, and keeps an otpauth URI to a
// version that phones read easily. No scripts, no external references:
// the image is ours, made from our text, so a client can show it as is.
func qrCodeDataURI(text string) (string, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", err
	}
	return "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(qrSVG(c))), nil
}

// qrSVG draws the code's modules, each horizontal run of black modules as
// one rectangle of the path, on a white square with the quiet zone.
func qrSVG(c *qr.Code) string {
	side := c.Size + 2*qrQuiet
	var path strings.Builder
	for y := 0; y < c.Size; y++ {
		for x := 0; x < c.Size; {
			if !c.Black(x, y) {
				x++
				continue
			}
			run := 1
			for c.Black(x+run, y) {
				run++
			}
			fmt.Fprintf(&path, "M%d %dh%dv1h-%dz", x+qrQuiet, y+qrQuiet, run, run)
			x += run
		}
	}
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" shape-rendering="crispEdges">`+
		`<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`,
		side, side, side*6, side*6, side, side, path.String())
}
