// Package web is the example browser frontend of authql: plain HTML and
// JavaScript, no build step. authql serves it at /example/ when
// AUTH_EXAMPLE_UI=true; this file only embeds it for that (go:embed cannot
// reach files outside the package's directory).
package web

import "embed"

// Files are the frontend's files, at the root.
//
//go:embed index.html app.js accounts.js mfa.js factors.js live.js graphql-ws.min.js NOTICE style.css
var Files embed.FS
