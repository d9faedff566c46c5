package mcsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// serveDelete removes the record whose id is the last segment of the path,
// unescaped: 204 when there was one, 404 when there was none. Either way the
// record is gone afterwards, so a client may treat both as success.
//
// The rules judge the delete as the record {"id": id}, before looking for
// the record: a refused DELETE gets the refuse status (as a customer's API
// may refuse to delete a record it holds on to) and removes nothing.
func (t *Target) serveDelete(w http.ResponseWriter, r *http.Request) {
	if t.failed(w, "") {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxBatchBytes))
	path := r.URL.EscapedPath()
	id, err := url.PathUnescape(path[strings.LastIndexByte(path, '/')+1:])
	if err != nil || id == "" {
		t.reply(w, http.StatusBadRequest, `{"error":"the last segment of the path must be a record id"}`)
		return
	}
	if ref, refused := t.judge([]batchRecord{{id: id}}); refused {
		ref.index = -1
		t.refuse(w, ref)
		return
	}
	t.mu.Lock()
	removed := t.remove(id)
	t.mu.Unlock()
	if !removed {
		msg, _ := json.Marshal(map[string]string{"error": "no record has id " + id})
		t.reply(w, http.StatusNotFound, string(msg))
		return
	}
	t.count(http.StatusNoContent)
	w.WriteHeader(http.StatusNoContent)
}

// deleteCounter counts a DELETE's response status in DeletesByStatus.
type deleteCounter struct {
	http.ResponseWriter
	t       *Target
	counted bool
}

func (d *deleteCounter) WriteHeader(status int) {
	d.note(status)
	d.ResponseWriter.WriteHeader(status)
}

func (d *deleteCounter) note(status int) {
	if d.counted {
		return
	}
	d.counted = true
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	if d.t.stats.DeletesByStatus == nil {
		d.t.stats.DeletesByStatus = make(map[int]int)
	}
	d.t.stats.DeletesByStatus[status]++
}
