package mail

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	texttemplate "text/template"
)

//go:embed templates
var embedded embed.FS

// parse reads kind's three templates, each from cfg.Templates when it has
// the file, otherwise from the embedded set.
func (c *Composer) parse(kind Kind) (*templates, error) {
	read := func(name string) (string, error) {
		if c.cfg.Templates != nil {
			b, err := fs.ReadFile(c.cfg.Templates, name)
			if err == nil {
				return string(b), nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("AUTH_MAIL_TEMPLATES: %w", err)
			}
		}
		b, err := embedded.ReadFile("templates/" + name)
		return string(b), err
	}
	var t templates
	// Each template is named after its file, so that an error running it
	// names the file to fix.
	for _, f := range []struct {
		suffix string
		set    func(name, src string) error
	}{
		{".subject.txt", func(name, src string) (err error) {
			t.subject, err = texttemplate.New(name).Option("missingkey=error").Parse(src)
			return
		}},
		{".txt", func(name, src string) (err error) {
			t.text, err = texttemplate.New(name).Option("missingkey=error").Parse(src)
			return
		}},
		{".html", func(name, src string) (err error) {
			t.html, err = htmltemplate.New(name).Option("missingkey=error").Parse(src)
			return
		}},
	} {
		name := string(kind) + f.suffix
		src, err := read(name)
		if err != nil {
			return nil, fmt.Errorf("mail template %s: %w", name, err)
		}
		if err := f.set(name, src); err != nil {
			return nil, fmt.Errorf("mail template %s: %w", name, err)
		}
	}
	return &t, nil
}
