// Package playground serves gqlgen's GraphiQL playground with its
// JavaScript and CSS from the binary instead of a CDN.
//
// gqlgen's page loads GraphiQL and React from cdn.jsdelivr.net. Served
// from here, the playground also works where the browser cannot reach the
// CDN (an offline laptop, a closed network, CI), and the API's origin does
// not make browsers fetch code from a third party. The files in assets/ are
// byte for byte the npm packages' (see assets/README), hence the very
// Subresource Integrity hashes gqlgen pins for its CDN URLs; TestAssets
// keeps the two in step.
package playground

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	gqlplayground "github.com/99designs/gqlgen/graphql/playground"
)

// AssetsPath is where Handler's page expects AssetsHandler.
const AssetsPath = "/playground-assets/"

//go:embed assets
var embedded embed.FS

// assets holds the files of assets/ at its root.
var assets, _ = fs.Sub(embedded, "assets")

// asset is one file the page loads and its Subresource Integrity hash.
type asset struct{ name, sri string }

// The files and the hashes of gqlgen's playground.Handler (v0.17.98),
// which are those of these npm files: graphiql 4.1.2, react and
// react-dom 18.2.0. GraphiQL's explorer plugin is off there, so not here.
var (
	graphiqlJS  = asset{"graphiql.min.js", "sha256-hnImuor1znlJkD/FOTL3jayfS/xsyNoP04abi8bFJWs="}
	graphiqlCSS = asset{"graphiql.min.css", "sha256-MEh+B2NdMSpj9kexQNN3QKc8UzMrCXW/Sx/phcpuyIU="}
	reactJS     = asset{"react.production.min.js", "sha256-S0lp+k7zWUMk2ixteM6HZvu8L9Eh//OVrt+ZfbCpmgY="}
	reactDOMJS  = asset{"react-dom.production.min.js", "sha256-IXWO0ITNDjfnNXIu5POVfqlgYoop36bDzhodR6LW5Pc="}
)

// Handler returns the playground page for the GraphQL endpoint, loading
// its scripts and styles from AssetsPath.
func Handler(title, endpoint string) http.HandlerFunc {
	return gqlplayground.Handler(title, endpoint,
		gqlplayground.WithGraphiqlVersion(
			AssetsPath+graphiqlJS.name, AssetsPath+graphiqlCSS.name, graphiqlJS.sri, graphiqlCSS.sri),
		gqlplayground.WithGraphiqlReactVersion(
			AssetsPath+reactJS.name, AssetsPath+reactDOMJS.name, reactJS.sri, reactDOMJS.sri),
	)
}

// AssetsHandler serves the page's files; mount it at AssetsPath.
func AssetsHandler() http.Handler {
	files := http.StripPrefix(AssetsPath, http.FileServerFS(assets))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			// No directory listings: the page names its files.
			http.NotFound(w, r)
			return
		}
		// The files never change within one build; a day keeps reloads
		// cheap without pinning a stale copy across upgrades for long.
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
