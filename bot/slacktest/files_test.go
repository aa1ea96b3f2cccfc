package slacktest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/slacktest"
)

func TestFilesUploadV2(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	png := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 1000)
	_, parent, _ := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("run 7", false))

	// slack-go v0.35 calls upload v2 UploadFileContext (it was
	// UploadFileV2Context before v0.17): getUploadURLExternal, a POST of
	// the bytes to the upload URL, completeUploadExternal.
	sum, err := w.api.UploadFileContext(ctx, slack.UploadFileParameters{
		Reader: bytes.NewReader(png), Filename: "dag.png", FileSize: len(png), Title: "hello-fanout",
		Channel: w.ops.ID, ThreadTimestamp: parent, InitialComment: "the DAG",
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.ID == "" || sum.Title != "hello-fanout" {
		t.Errorf("summary = %+v", sum)
	}
	for _, m := range []string{"files.getUploadURLExternal", "files.upload", "files.completeUploadExternal"} {
		if cs := w.srv.Calls(m); len(cs) != 1 || cs[0].Status != http.StatusOK {
			t.Errorf("%s calls = %+v", m, cs)
		}
	}
	f, ok := w.srv.File(sum.ID)
	if !ok || !bytes.Equal(f.Content, png) || f.Size != len(png) || f.Mimetype != "image/png" || f.Filetype != "png" ||
		!slices.Equal(f.Channels, []string{w.ops.ID}) || f.User != w.srv.BotUserID() || !f.Completed {
		t.Errorf("file = %+v", f)
	}
	msgs := w.srv.Messages(w.ops.ID)
	if len(msgs) != 2 || !slices.Equal(msgs[1].Files, []string{sum.ID}) || msgs[1].ThreadTS != parent || msgs[1].Text != "the DAG" {
		t.Errorf("messages = %+v", msgs)
	}

	// files.info, then a download with the bot token, as the bot fetches bundles.
	info, _, _, err := w.api.GetFileInfoContext(ctx, sum.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "dag.png" || info.Size != len(png) || !slices.Equal(info.Channels, []string{w.ops.ID}) || info.URLPrivateDownload == "" {
		t.Errorf("info = %+v", info)
	}
	var got bytes.Buffer
	if err := w.api.GetFileContext(ctx, info.URLPrivateDownload, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), png) {
		t.Errorf("downloaded %d bytes, want %d", got.Len(), len(png))
	}
	if c := w.srv.Calls("files.download")[0]; c.Header.Get("Authorization") != "Bearer "+w.srv.BotToken() {
		t.Errorf("download header = %q", c.Header.Get("Authorization"))
	}

	if _, _, _, err := w.api.GetFileInfoContext(ctx, "F404", 0, 0); slackErr(err) != "file_not_found" {
		t.Errorf("unknown file: %v", err)
	}
	// Completing an upload whose bytes never arrived fails.
	u, err := w.api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: "x.txt", FileSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: u.FileID}}, Channel: w.ops.ID}); slackErr(err) != "file_not_found" {
		t.Errorf("complete before upload: %v", err)
	}
	// Sharing to a channel the bot may not post in fails like chat.postMessage.
	_, err = w.api.UploadFileContext(ctx, slack.UploadFileParameters{Content: "x", Filename: "x.txt", FileSize: 1, Channel: w.off.ID})
	if !strings.Contains(slackErr(err), "not_in_channel") {
		t.Errorf("upload to a channel without the bot: %v", err)
	}
}

func TestFileDownloadNeedsTheBotToken(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	bundle := []byte("workflow.yaml + nodes, zipped")
	f, m := w.srv.UploadFile(w.ops.ID, w.alice.ID, "hello-fanout.zip", bundle)
	if m.User != w.alice.ID || !slices.Equal(m.Files, []string{f.ID}) || f.URLPrivate == "" {
		t.Fatalf("upload: %+v %+v", f, m)
	}
	// The message event carries the file as Slack's does.
	if files, _ := w.srv.MessageEvent(m)["files"].([]any); len(files) != 1 {
		t.Errorf("message event files = %v", w.srv.MessageEvent(m)["files"])
	}

	cases := []struct {
		name    string
		url     string
		auth    string
		status  int
		content []byte
	}{
		{"bot token", f.URLPrivate, "Bearer " + w.srv.BotToken(), 200, bundle},
		{"download URL", f.URLPrivateDownload, "Bearer " + w.srv.BotToken(), 200, bundle},
		{"no token", f.URLPrivate, "", 200, nil},                 // sign-in page
		{"wrong token", f.URLPrivate, "Bearer xoxb-x", 200, nil}, // sign-in page
		{"token in the wrong scheme", f.URLPrivate, w.srv.BotToken(), 200, nil},
		{"unknown file", strings.Replace(f.URLPrivate, f.ID, "F404", 1), "Bearer " + w.srv.BotToken(), 404, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			switch {
			case tc.content != nil && !bytes.Equal(body, tc.content):
				t.Errorf("body = %q", body)
			case tc.content == nil && tc.status == 200 && (!strings.Contains(string(body), "Sign in") || resp.Request.URL.Query().Get("redir") == ""):
				t.Errorf("not redirected to sign-in: %s %q", resp.Request.URL, body)
			}
		})
	}

	// slack-go reports the redirect to the sign-in page as an error.
	wrong := slack.New("xoxb-wrong", slack.OptionAPIURL(w.srv.APIURL()))
	var buf bytes.Buffer
	if err := wrong.GetFileContext(ctx, f.URLPrivateDownload, &buf); err == nil || !strings.Contains(err.Error(), "sign-in") {
		t.Errorf("download with a wrong token: %v", err)
	}
	// A file shared only where the bot is not is out of its reach.
	hidden := w.srv.AddChannel(slacktest.Channel{Name: "hidden", IsPrivate: true, Members: []string{w.alice.ID}})
	g, _ := w.srv.UploadFile(hidden.ID, w.alice.ID, "secret.zip", []byte("x"))
	if err := w.api.GetFileContext(ctx, g.URLPrivate, &buf); err == nil {
		t.Error("the bot downloaded a file from a channel it cannot see")
	}
	if _, _, _, err := w.api.GetFileInfoContext(ctx, g.ID, 0, 0); slackErr(err) != "file_not_found" {
		t.Errorf("files.info on a hidden file: %v", err)
	}
}
