package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/store"
)

// userCmd is `amwi user add [--admin] NAME`, the password read from standard input (one
// line; not echoed on a terminal). Through the daemon when it runs, else on the store.
func (c *cli) userCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(c.env.Stdout, "Usage: amwi user add [--admin] NAME   (the password is read from stdin)\n")
		return errHelpShown
	}
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintln(c.env.Stderr, "amwi user: say add NAME")
		return ErrUsage
	}
	fs := c.flags("user add")
	admin := fs.Bool("admin", false, "make the user an administrator (the first user always is)")
	if err := c.parse(fs, args[1:], 1); err != nil {
		return err
	}
	name := fs.Arg(0)
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	if err := auth.ValidateName(name); err != nil {
		return err
	}
	pw, err := c.readPassword(ctx)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"name": name, "password": pw, "admin": *admin})
	resp, err := controlClient(cfg.State.Dir).Post("http://amwi/users", "application/json", bytes.NewReader(body))
	if err == nil {
		defer resp.Body.Close()
		var out struct {
			Error string `json:"error"`
			Admin bool   `json:"admin"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusOK {
			return errors.New(out.Error)
		}
		return c.userAdded(name, out.Admin)
	}
	if !daemonAbsent(err) {
		return fmt.Errorf("ask the daemon: %w", err)
	}
	st, err := store.Open(cfg.State.Dir, 2*time.Second)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := addUser(&auth.Service{Store: st, Log: c.quietLogger()}, name, pw, *admin)
	if err != nil {
		return err
	}
	return c.userAdded(name, u.Admin)
}

func (c *cli) userAdded(name string, admin bool) error {
	role := "user"
	if admin {
		role = "administrator"
	}
	fmt.Fprintf(c.env.Stdout, "added %s %s\n", role, name)
	return nil
}

// addUser creates the first account as the admin (as the first web registration would),
// later ones as asked.
func addUser(a *auth.Service, name, pw string, admin bool) (auth.User, error) {
	if setup, err := a.NeedsSetup(); err != nil {
		return auth.User{}, err
	} else if setup {
		return a.Register(name, pw)
	}
	return a.Create(name, pw, admin)
}

// readPassword reads one line from stdin, without echo when stdin is a terminal. Ctrl-C
// (ctx ending) aborts it: nothing is created.
func (c *cli) readPassword(ctx context.Context) (string, error) {
	in := c.env.Stdin
	if f, ok := in.(*os.File); ok {
		if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			fmt.Fprint(c.env.Stderr, "password: ")
			noEcho := *t
			noEcho.Lflag &^= unix.ECHO
			unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &noEcho)
			defer func() {
				unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
				fmt.Fprintln(c.env.Stderr)
			}()
		}
	}
	type answer struct {
		line string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
		got <- answer{line, err}
	}()
	select {
	case <-ctx.Done():
		return "", errors.New("interrupted: no user created")
	case a := <-got:
		if a.err != nil && !(errors.Is(a.err, io.EOF) && a.line != "") {
			return "", errors.New("no password on standard input (echo the password | amwi user add NAME)")
		}
		return strings.TrimRight(a.line, "\r\n"), nil
	}
}
