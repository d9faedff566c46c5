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
// record is gone afterwards, so a client may treat both as success. With a
// composite TargetOptions.Key the path's segment is the first key field and
// the query names the others (?list_id=...); a DELETE without them is a
// 400, never the delete of some record with that id.
//
// The rules judge the delete as the record {"id": id} (its key fields),
// before looking for the record: a refused DELETE gets the refuse status
// (as a customer's API may refuse to delete a record it holds on to) and
// removes nothing.
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
	key := []string{id}
	for _, field := range t.opts.Key[1:] {
		v := r.URL.Query().Get(field)
		if v == "" {
			msg, _ := json.Marshal(map[string]string{"error": "the query must name the record's " + field + " (?" + field + "=...)"})
			t.reply(w, http.StatusBadRequest, string(msg))
			return
		}
		key = append(key, v)
	}
	rec := batchRecord{id: id, key: key}
	if ref, refused := t.judge([]batchRecord{rec}); refused {
		ref.index = -1
		t.refuse(w, ref)
		return
	}
	t.mu.Lock()
	removed := t.remove(rec.mapKey())
	t.mu.Unlock()
	if !removed {
		msg, _ := json.Marshal(map[string]string{"error": "no record has " + strings.Join(t.opts.Key, ", ") + " " + strings.Join(key, ", ")})
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
