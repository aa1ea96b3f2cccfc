package slacktest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// File is a file in the workspace: uploaded by the bot through files upload
// v2, or by a person with UploadFile.
type File struct {
	ID       string
	Name     string
	Title    string
	Mimetype string
	Filetype string
	Size     int
	User     string
	Content  []byte
	// Channels are the conversations the file was shared to.
	Channels []string
	// Uploaded: the bytes reached the upload URL. Completed:
	// files.completeUploadExternal finished it (or a person uploaded it).
	Uploaded  bool
	Completed bool
	Created   time.Time
	AltText   string
	// URLPrivate and URLPrivateDownload serve the content to a request that
	// carries the bot token in an Authorization: Bearer header; any other
	// request is redirected to a sign-in page, as files.slack.com does.
	URLPrivate         string
	URLPrivateDownload string
}

func cloneFile(f *File) File {
	out := *f
	out.Content = append([]byte(nil), f.Content...)
	out.Channels = append([]string(nil), f.Channels...)
	return out
}

// Files returns every file, in creation order.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []File
	for _, id := range s.fileOrder {
		out = append(out, cloneFile(s.files[id]))
	}
	return out
}

// File returns a file by id.
func (s *Server) File(id string) (File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[id]
	if !ok {
		return File{}, false
	}
	return cloneFile(f), true
}

func (s *Server) newFileLocked(name, user string) *File {
	id := s.newIDLocked("F")
	ext := strings.TrimPrefix(path.Ext(name), ".")
	mt := mime.TypeByExtension(path.Ext(name))
	if mt == "" {
		mt = "application/octet-stream"
	}
	if i := strings.Index(mt, ";"); i >= 0 {
		mt = mt[:i]
	}
	base := s.ts.URL + "/files-pri/" + s.cfg.teamID + "-" + id + "/"
	f := &File{
		ID: id, Name: name, Title: name, User: user, Mimetype: mt, Filetype: ext,
		Created:            time.Now(),
		URLPrivate:         base + url.PathEscape(name),
		URLPrivateDownload: base + "download/" + url.PathEscape(name),
	}
	if f.Filetype == "" {
		f.Filetype = "binary"
	}
	s.files[id] = f
	s.fileOrder = append(s.fileOrder, id)
	return f
}

// UploadFile puts a file in a channel as if a person uploaded it there, with
// the message that shares it, and returns it. Send the matching event with
// MessageEvent (of the returned message) or FileSharedEvent.
func (s *Server) UploadFile(channel, user, name string, content []byte) (File, Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.newFileLocked(name, user)
	f.Content = append([]byte(nil), content...)
	f.Size = len(content)
	f.Uploaded, f.Completed = true, true
	f.Channels = []string{channel}
	m := &Message{Channel: channel, User: user, Files: []string{f.ID}}
	s.addMessageLocked(m)
	return cloneFile(f), cloneMessage(m)
}

func (s *Server) fileJSONLocked(f *File) map[string]any {
	var channels, groups, ims []string
	public := false
	for _, id := range f.Channels {
		c, ok := s.channels[id]
		switch {
		case !ok:
		case c.IsIM:
			ims = append(ims, id)
		case c.IsPrivate:
			groups = append(groups, id)
		default:
			channels = append(channels, id)
			public = true
		}
	}
	if channels == nil {
		channels = []string{}
	}
	if groups == nil {
		groups = []string{}
	}
	if ims == nil {
		ims = []string{}
	}
	m := map[string]any{
		"id":                   f.ID,
		"created":              f.Created.Unix(),
		"timestamp":            f.Created.Unix(),
		"name":                 f.Name,
		"title":                f.Title,
		"mimetype":             f.Mimetype,
		"filetype":             f.Filetype,
		"pretty_type":          strings.ToUpper(f.Filetype),
		"user":                 f.User,
		"user_team":            s.cfg.teamID,
		"editable":             false,
		"size":                 f.Size,
		"mode":                 "hosted",
		"is_external":          false,
		"external_type":        "",
		"is_public":            public,
		"public_url_shared":    false,
		"display_as_bot":       false,
		"username":             "",
		"url_private":          f.URLPrivate,
		"url_private_download": f.URLPrivateDownload,
		"permalink":            "https://" + s.cfg.teamDomain + ".slack.com/files/" + f.User + "/" + f.ID + "/" + url.PathEscape(f.Name),
		"permalink_public":     "https://slack-files.com/" + s.cfg.teamID + "-" + f.ID,
		"channels":             channels,
		"groups":               groups,
		"ims":                  ims,
		"has_rich_preview":     false,
		"file_access":          "visible",
		"comments_count":       0,
	}
	if f.AltText != "" {
		m["alt_txt"] = f.AltText
	}
	return m
}

func (s *Server) filesGetUploadURLExternal(q *request) reply {
	name := q.get("filename")
	length, err := strconv.Atoi(q.get("length"))
	if name == "" || err != nil || length <= 0 {
		return errReply("invalid_arguments")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.newFileLocked(name, s.cfg.botUserID)
	f.Size = length
	f.AltText = q.get("alt_txt")
	return okReply(map[string]any{"upload_url": s.ts.URL + "/upload/" + f.ID, "file_id": f.ID})
}

// handleUpload is the upload URL of files upload v2. Like Slack's, it takes
// the bytes as a raw body or as a multipart form's file, and needs no token.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "files.upload", func(q *request) reply {
		content := q.body
		if mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
			part, err := firstFilePart(q.body, params["boundary"])
			if err != nil {
				return textReply(http.StatusBadRequest, "bad multipart body: "+err.Error())
			}
			content = part
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		f, ok := s.files[r.PathValue("file")]
		if !ok || f.Completed {
			return textReply(http.StatusNotFound, "Not Found")
		}
		f.Content = append([]byte(nil), content...)
		f.Size = len(content)
		f.Uploaded = true
		s.notifyLocked()
		return textReply(http.StatusOK, "OK - "+strconv.Itoa(len(content)))
	})
}

func firstFilePart(body []byte, boundary string) ([]byte, error) {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := mr.NextPart()
		if err != nil {
			return nil, err
		}
		if p.FileName() != "" || p.FormName() == "file" {
			return io.ReadAll(p)
		}
	}
}

func (s *Server) filesCompleteUploadExternal(q *request) reply {
	var summaries []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(q.get("files")), &summaries); err != nil || len(summaries) == 0 {
		return errReply("invalid_arguments")
	}
	blocks, _, ok := rawJSONParam(q, "blocks")
	if !ok {
		return errReply("invalid_blocks")
	}
	var targets []string
	if c := q.get("channel_id"); c != "" {
		targets = append(targets, c)
	}
	for _, c := range strings.Split(q.get("channels"), ",") {
		if c = strings.TrimSpace(c); c != "" {
			targets = append(targets, c)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var files []*File
	for _, sum := range summaries {
		f, ok := s.files[sum.ID]
		if !ok || !f.Uploaded || f.Completed || f.User != s.cfg.botUserID {
			return errReply("file_not_found")
		}
		files = append(files, f)
	}
	var chans []*Channel
	for _, arg := range dedupe(targets) {
		c, code := s.postableLocked(arg)
		if code != "" {
			return errReply(code)
		}
		chans = append(chans, c)
	}
	var ids []string
	for i, f := range files {
		f.Completed = true
		if summaries[i].Title != "" {
			f.Title = summaries[i].Title
		}
		for _, c := range chans {
			f.Channels = append(f.Channels, c.ID)
		}
		ids = append(ids, f.ID)
	}
	for _, c := range chans {
		s.addMessageLocked(&Message{
			Channel: c.ID, User: s.cfg.botUserID, BotID: s.cfg.botID,
			Text: q.get("initial_comment"), Blocks: blocks, ThreadTS: q.get("thread_ts"),
			Files: append([]string(nil), ids...),
		})
	}
	var out []any
	for _, f := range files {
		out = append(out, s.fileJSONLocked(f))
	}
	s.notifyLocked()
	return okReply(map[string]any{"files": out})
}

// botCanSeeLocked reports whether the bot may read a file: its own, or one
// shared in a conversation it can see.
func (s *Server) botCanSeeLocked(f *File) bool {
	if f.User == s.cfg.botUserID {
		return true
	}
	for _, id := range f.Channels {
		if _, code := s.visibleLocked(id); code == "" {
			return true
		}
	}
	return false
}

func (s *Server) filesInfo(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[q.get("file")]
	if !ok || !f.Completed || !s.botCanSeeLocked(f) {
		return errReply("file_not_found")
	}
	return okReply(map[string]any{
		"file":     s.fileJSONLocked(f),
		"comments": []any{},
		"paging":   map[string]any{"count": 100, "total": 1, "page": 1, "pages": 1},
	})
}

// handleDownload serves url_private and url_private_download. Without the
// bot token in the Authorization header it redirects to the sign-in page
// with redir set to the file's path, as files.slack.com does.
func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "files.download", func(q *request) reply {
		teamID, fileID, _ := strings.Cut(r.PathValue("teamfile"), "-")
		s.mu.Lock()
		defer s.mu.Unlock()
		f, ok := s.files[fileID]
		if teamID != s.cfg.teamID || !ok || !f.Completed || r.PathValue("name") != f.Name {
			return textReply(http.StatusNotFound, "Not Found")
		}
		if r.Header.Get("Authorization") != "Bearer "+s.cfg.botToken || !s.botCanSeeLocked(f) {
			h := http.Header{}
			h.Set("Location", s.ts.URL+"/signin?redir="+url.QueryEscape(r.URL.Path))
			return reply{status: http.StatusFound, header: h}
		}
		h := http.Header{}
		h.Set("Content-Type", f.Mimetype)
		h.Set("Content-Length", strconv.Itoa(len(f.Content)))
		if strings.Contains(r.URL.Path, "/download/") {
			h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
		}
		return reply{status: http.StatusOK, header: h, body: append([]byte(nil), f.Content...)}
	})
}

func (s *Server) handleSignin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, "<!DOCTYPE html><html><head><title>Sign in | Slack</title></head><body>Sign in to "+s.cfg.teamName+"</body></html>")
}
