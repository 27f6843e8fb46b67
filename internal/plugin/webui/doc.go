// Package webui is the read-only web view behind `kubectl taskpilot ui`: a live task list,
// a page per task with its conditions, Events and a timeline of its attempts, and a chart of
// tasks by phase over time.
//
// It runs on the user's machine with the user's kubeconfig and DATABASE_URL, so their RBAC
// applies and nothing new is exposed in the cluster. Pages are rendered on the server
// (html/template, inline SVG charts); one small script re-renders the parts of a page marked
// data-live whenever the server-sent event stream says a task changed. There is no JavaScript
// library and no build step.
package webui
