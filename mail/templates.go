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
	for _, f := range []struct {
		suffix string
		set    func(string) error
	}{
		{".subject.txt", func(s string) (err error) {
			t.subject, err = texttemplate.New("").Option("missingkey=error").Parse(s)
			return
		}},
		{".txt", func(s string) (err error) {
			t.text, err = texttemplate.New("").Option("missingkey=error").Parse(s)
			return
		}},
		{".html", func(s string) (err error) {
			t.html, err = htmltemplate.New("").Option("missingkey=error").Parse(s)
			return
		}},
	} {
		name := string(kind) + f.suffix
		src, err := read(name)
		if err != nil {
			return nil, fmt.Errorf("mail template %s: %w", name, err)
		}
		if err := f.set(src); err != nil {
			return nil, fmt.Errorf("mail template %s: %w", name, err)
		}
	}
	return &t, nil
}
