;;; bactrian.el --- Thin client for the bactrian AID sidecar  -*- lexical-binding: t; -*-

;; Copyright (C) 2026 The bactrian authors

;; Author: The bactrian authors
;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1"))
;; Keywords: tools, convenience
;; URL: https://example.invalid/bactrian

;; This file is not part of GNU Emacs.

;;; Commentary:

;; Ask the bactrian AID sidecar (`bactrian aid serve') for a change, watch the answer stream
;; into a markdown conversation buffer, preview the multi-file diff, apply it to buffers,
;; then accept or reject it.  All prompt, context and model logic lives in the sidecar: this
;; client speaks the protocol of docs/aid-protocol.md (JSON-RPC 2.0 over a Unix socket) and
;; nothing more.
;;
;;   (require 'bactrian)
;;   (bactrian-global-mode 1)   ; C-c , a asks about the region or buffer, C-c , C-h lists keys

;;; Code:

(require 'jsonrpc)
(require 'cl-lib)
(require 'subr-x)


(defgroup bactrian nil
  "Client for the bactrian AID sidecar."
  :group 'tools
  :prefix "bactrian-")

(defcustom bactrian-socket nil
  "The sidecar's Unix socket; nil means the protocol's default path."
  :type '(choice (const :tag "Default" nil) file))

(defcustom bactrian-server-command '("bactrian" "aid" "serve")
  "Command that starts the sidecar when none answers (see `bactrian-start-server')."
  :type '(repeat string))

(defcustom bactrian-start-server 'ask
  "Whether to start `bactrian-server-command' when no sidecar answers."
  :type '(choice (const :tag "Ask" ask) (const :tag "Always" t) (const :tag "Never" nil)))

(defcustom bactrian-workspace-root nil
  "The workspace root sent to the sidecar; nil means the project or VCS root."
  :type '(choice (const :tag "Auto" nil) directory))

(defcustom bactrian-reconnect-give-up 30.0
  "Seconds of failed reconnects after which the client gives up (protocol: 30)."
  :type 'number)

(defcustom bactrian-conversation-buffer "*bactrian*"
  "Name of the conversation buffer."
  :type 'string)

(defconst bactrian-protocol-version "1.0")
(defconst bactrian-client-version "0.1.0")

(defvar bactrian--conn nil "The live `jsonrpc-process-connection', or nil.")
(defvar bactrian--state 'disconnected "One of `disconnected', `connecting', `connected'.")
(defvar bactrian--server nil "The last `initialize' result (a plist).")
(defvar bactrian--root nil "The workspace root of the connection.")
(defvar bactrian--reconnect-timer nil)
(defvar bactrian--reconnect-since nil "When the current reconnect loop started.")
(defvar bactrian--reconnect-delay nil "The next backoff delay, in seconds.")
(defvar bactrian--closing nil "Non-nil while the client itself closes the connection.")
(defvar bactrian--proposal nil
  "The current proposal: a plist (:id :state :final :applied :before :feedback).")
(defvar bactrian--last-ask nil "The params of the last `propose', for `bactrian-retry'.")
(defvar bactrian--resend nil
  "Requests cut by a lost connection, sent again after the reconnect.
That is the protocol's reconnect rule 3.")

;;;; Connection

(defun bactrian--socket ()
  "The socket path: `bactrian-socket' or the protocol's default."
  (or bactrian-socket
      (let ((xdg (getenv "XDG_RUNTIME_DIR")))
        (if (and xdg (not (string-empty-p xdg)))
            (expand-file-name "bactrian/aid.sock" xdg)
          (format "/tmp/bactrian-%d/aid.sock" (user-uid))))))

(defun bactrian--workspace-root ()
  "The workspace root to send in `initialize'."
  (directory-file-name
   (expand-file-name
    (or bactrian-workspace-root
        (and (fboundp 'project-current)
             (when-let ((pr (project-current nil))) (car (last pr))))
        (locate-dominating-file default-directory ".git")
        (locate-dominating-file default-directory "dune-project")
        default-directory))))

(defun bactrian--set-state (state)
  "Record connection STATE and refresh mode lines."
  (setq bactrian--state state)
  (force-mode-line-update t))

(defun bactrian--lighter ()
  "Mode-line text of the connection state."
  (pcase bactrian--state
    ('connected " AID")
    ('connecting " AID[…]")
    (_ " AID[off]")))

(defun bactrian--open (socket)
  "Open a connection to SOCKET; return it, or nil when nothing answers."
  (condition-case nil
      (let ((proc (make-network-process
                   :name "bactrian-aid" :family 'local :service socket
                   :coding 'utf-8-unix :noquery t)))
        (jsonrpc-process-connection
         :name "bactrian-aid" :process proc
         :events-buffer-scrollback-size 0
         :notification-dispatcher #'bactrian--notification
         :on-shutdown #'bactrian--on-shutdown))
    (file-error nil)))

(defun bactrian--initialize (conn on-ready)
  "Send `initialize' on CONN; call ON-READY with the result."
  (jsonrpc-async-request
   conn 'initialize
   (list :protocolVersion bactrian-protocol-version
         :client (list :name "bactrian.el" :version bactrian-client-version)
         :workspaceRoot bactrian--root)
   :success-fn (lambda (result)
                 (setq bactrian--server result)
                 (bactrian--set-state 'connected)
                 (funcall on-ready result))
   :error-fn (lambda (err) (bactrian--say "initialize failed: %s" (plist-get err :message)))))

(defun bactrian--start-server (socket)
  "Start the sidecar on SOCKET if the user allows it; non-nil if started."
  (when (and bactrian-server-command
             (pcase bactrian-start-server
               ('ask (y-or-n-p "No bactrian aid sidecar answers; start one? "))
               (v v)))
    (apply #'start-process "bactrian-aid-server" " *bactrian server*"
           (append bactrian-server-command (list "--socket" socket)))
    (cl-loop repeat 100 until (file-exists-p socket) do (sleep-for 0.1))
    (sleep-for 0.2)
    t))

(defun bactrian-connect ()
  "Connect to the sidecar (starting it if allowed) and `initialize'."
  (interactive)
  ;; a reconnect in progress (its timer, or its `initialize' on the way): wait for it
  (when (eq bactrian--state 'connecting)
    (bactrian--wait (lambda () (eq bactrian--state 'connected)) 5))
  (unless (and bactrian--conn (jsonrpc-running-p bactrian--conn))
    (let ((socket (bactrian--socket)))
      (setq bactrian--root (bactrian--workspace-root))
      (setq bactrian--conn (or (bactrian--open socket)
                               (and (bactrian--start-server socket) (bactrian--open socket))))
      (unless bactrian--conn
        (bactrian--set-state 'disconnected)
        (user-error "%s" (format "bactrian aid is not running: start it with `bactrian aid serve' (socket %s)"
                                 socket)))
      (bactrian--set-state 'connecting)
      (bactrian--initialize bactrian--conn
                            (lambda (r) (bactrian--say "connected to bactrian aid %s (arm %s)"
                                                       (plist-get r :serverVersion)
                                                       (plist-get (plist-get r :arm) :arm))))
      (bactrian--wait (lambda () (eq bactrian--state 'connected)) 5)))
  bactrian--conn)

(defun bactrian-disconnect ()
  "Close the connection to the sidecar."
  (interactive)
  (when bactrian--conn
    (let ((bactrian--closing t))
      (jsonrpc-shutdown bactrian--conn t)))
  (setq bactrian--conn nil)
  (bactrian--set-state 'disconnected))

(defun bactrian--on-shutdown (conn)
  "CONN closed: fail what was in flight, reconnect (protocol rules 1-2)."
  (when (eq conn bactrian--conn)
    (setq bactrian--conn nil)
    (bactrian--set-state 'disconnected)
    (bactrian--fail-in-flight)
    (unless bactrian--closing (bactrian--reconnect-soon nil))))

(defun bactrian--reconnect-soon (retry-after-ms)
  "Start the one reconnect loop, first try after RETRY-AFTER-MS (or 50 ms)."
  (unless bactrian--reconnect-timer
    (setq bactrian--reconnect-since (float-time)
          bactrian--reconnect-delay 0.05)
    (bactrian--set-state 'connecting)
    (setq bactrian--reconnect-timer
          (run-at-time (if retry-after-ms (/ retry-after-ms 1000.0) 0.05)
                       nil #'bactrian--reconnect-attempt))))

(defun bactrian--reconnect-attempt ()
  "One reconnect attempt; reschedule with backoff.
The delay doubles from 50 ms, capped at 1 s, with ±20 % jitter."
  (setq bactrian--reconnect-timer nil)
  (let ((conn (bactrian--open (bactrian--socket))))
    (cond
     (conn
      (setq bactrian--conn conn)
      (bactrian--initialize
       conn (lambda (_r)
              (bactrian--say "reconnected to bactrian aid (the sidecar restarted)")
              (let ((todo (reverse bactrian--resend)))
                (setq bactrian--resend nil)
                (dolist (r todo) (apply #'bactrian--request r))))))
     ((> (- (float-time) bactrian--reconnect-since) bactrian-reconnect-give-up)
      (bactrian--set-state 'disconnected)
      (dolist (r bactrian--resend)
        (bactrian--say "%s did not finish: the sidecar is gone" (car r)))
      (setq bactrian--resend nil)
      (bactrian--say "bactrian aid is not running: start it with `bactrian aid serve'"))
     (t
      (let ((delay (* bactrian--reconnect-delay (+ 0.8 (* 0.4 (cl-random 1.0))))))
        (setq bactrian--reconnect-delay (min 1.0 (* 2 bactrian--reconnect-delay)))
        (setq bactrian--reconnect-timer
              (run-at-time delay nil #'bactrian--reconnect-attempt)))))))

(defun bactrian--restart-signal (retry-after-ms)
  "The server restarts: drop the connection, reconnect after RETRY-AFTER-MS."
  (when-let ((conn bactrian--conn))
    (setq bactrian--conn nil)
    (let ((bactrian--closing t)) (ignore-errors (jsonrpc-shutdown conn t)))
    (bactrian--fail-in-flight))
  (bactrian--reconnect-soon retry-after-ms))

(defun bactrian--request (method params on-result &optional on-error)
  "Send METHOD with PARAMS; call ON-RESULT with the result.
On an error call ON-ERROR, or show the message."
  (jsonrpc-async-request
   (bactrian-connect) method params
   :success-fn on-result
   :error-fn (lambda (err)
               (let ((code (plist-get err :code)))
                 ;; -32001 (restarting), or jsonrpc.el's -1 "Server died": the connection
                 ;; went. A running ask fails (`bactrian--fail-in-flight'); other requests
                 ;; are sent again once reconnected.
                 (when (and (memql code '(-32001 -1)) (not (eq method 'propose)))
                   (push (list method params on-result on-error) bactrian--resend))
                 (pcase code
                   (-32001 (bactrian--restart-signal
                            (plist-get (plist-get err :data) :retryAfterMs)))
                   (-1)
                   (_ (if on-error (funcall on-error err)
                        (bactrian--say "%s failed: %s" method (plist-get err :message)))))))))

(defun bactrian--wait (pred seconds)
  "Process events until PRED holds or SECONDS pass."
  (let ((end (+ (float-time) seconds)))
    (while (and (not (funcall pred)) (< (float-time) end))
      (accept-process-output nil 0.05))))

(defun bactrian--say (fmt &rest args)
  "Show FMT with ARGS in the echo area."
  (message "bactrian: %s" (apply #'format fmt args)))

;;;; Conversation buffer

(defun bactrian--conversation ()
  "The conversation buffer, created in `markdown-mode' when installed."
  (or (get-buffer bactrian-conversation-buffer)
      (with-current-buffer (get-buffer-create bactrian-conversation-buffer)
        (bactrian-conversation-mode)
        (insert "# bactrian\n\nType a prompt at the end and press C-c C-c to ask.\n")
        (current-buffer))))

(defun bactrian--append (&rest strings)
  "Append STRINGS to the conversation, keeping windows at its end scrolled."
  (with-current-buffer (bactrian--conversation)
    (let ((at-end (= (point) (point-max))))
      (save-excursion (goto-char (point-max)) (apply #'insert strings))
      (when at-end (goto-char (point-max))))
    (dolist (w (get-buffer-window-list (current-buffer) nil t))
      (set-window-point w (point-max))
      (unless (pos-visible-in-window-p (point-max) w)
        (with-selected-window w (recenter -1))))))

;;;; Asking

(defun bactrian--pos (pos)
  "POS as a protocol position {line, character} (0-based)."
  (save-excursion
    (goto-char pos)
    (list :line (1- (line-number-at-pos)) :character (- pos (line-beginning-position)))))

(defun bactrian--rel (file)
  "FILE relative to the workspace root."
  (file-relative-name file (file-name-as-directory bactrian--root)))

(defun bactrian--buffers (&optional except)
  "Open, visiting buffers inside the workspace (not EXCEPT), as [{path, text}]."
  (vconcat
   (cl-loop for b in (buffer-list)
            for f = (buffer-file-name b)
            when (and f (not (eq b except)) (file-in-directory-p f bactrian--root))
            collect (with-current-buffer b
                      (list :path (bactrian--rel f)
                            :text (buffer-substring-no-properties (point-min) (point-max)))))))

(defun bactrian--ask-params (prompt scope)
  "The `propose' params for PROMPT about SCOPE (`region', `buffer' or `workspace')."
  (let ((p (list :prompt prompt)))
    (when (and buffer-file-name (not (eq scope 'workspace)))
      (setq p (append p (list :file (list :path (bactrian--rel buffer-file-name)
                                          :text (buffer-substring-no-properties
                                                 (point-min) (point-max)))))))
    (if (and (eq scope 'region) (use-region-p))
        (setq p (append p (list :selection (list :start (bactrian--pos (region-beginning))
                                                 :end (bactrian--pos (region-end))))))
      (setq p (append p (list :cursor (bactrian--pos (point))))))
    (append p (list :buffers (bactrian--buffers (current-buffer))))))

(defun bactrian--propose (params source)
  "Send `propose' with PARAMS; SOURCE is the buffer asked about."
  (bactrian--abandon)
  (setq bactrian--last-ask (list params source))
  (bactrian--append "\n## " (plist-get params :prompt) "\n\n")
  (setq bactrian--proposal (list :id nil :state 'asking :source source :tokens 0))
  (bactrian--request
   'propose params
   (lambda (r)
     (let ((id (plist-get r :proposalId)))
       (setq bactrian--proposal (plist-put bactrian--proposal :id id))
       (dolist (p (reverse (plist-get bactrian--proposal :early)))
         (when (equal (plist-get p :proposalId) id) (bactrian--progress p)))))
   (lambda (err)
     (setq bactrian--proposal (plist-put bactrian--proposal :state 'failed))
     (bactrian--append "\n**failed:** " (plist-get err :message) "\n"))))

(defun bactrian-ask (prompt &optional scope)
  "Ask the sidecar PROMPT about the region (if active) or buffer; SCOPE overrides."
  (interactive (list (read-string "Ask bactrian: ")))
  (bactrian-connect)
  (let ((scope (or scope (if (use-region-p) 'region 'buffer))))
    (display-buffer (bactrian--conversation))
    (bactrian--propose (bactrian--ask-params prompt scope) (current-buffer))))

(defun bactrian-ask-workspace (prompt)
  "Ask the sidecar PROMPT about the workspace (no current file)."
  (interactive (list (read-string "Ask bactrian (workspace): ")))
  (bactrian-ask prompt 'workspace))

(defun bactrian-send-conversation ()
  "Send the prompt typed after the last answer in the conversation buffer."
  (interactive)
  (let* ((conv (bactrian--conversation))
         (prompt (with-current-buffer conv
                   (let ((start (bactrian--input-start)))
                     (prog1 (string-trim (buffer-substring-no-properties start (point-max)))
                       (delete-region start (point-max))))))
         (source (or (cadr bactrian--last-ask) (other-buffer conv t))))
    (when (string-empty-p prompt) (user-error "Type a prompt at the end of %s first" (buffer-name conv)))
    (with-current-buffer (if (buffer-live-p source) source (current-buffer))
      (bactrian-ask prompt 'buffer))))

(defun bactrian--input-start ()
  "Where the user's typed prompt starts: after the conversation's last marker."
  (save-excursion
    (goto-char (point-max))
    (if (re-search-backward "^\\(_[^\n]*_\\|```\\|Type a prompt[^\n]*\\)$" nil t)
        (line-end-position)
      (point-min))))

(defun bactrian-retry ()
  "Ask the last question again (after a failure or a sidecar restart)."
  (interactive)
  (unless bactrian--last-ask (user-error "Nothing to retry"))
  (bactrian-connect)
  (bactrian--propose (car bactrian--last-ask) (cadr bactrian--last-ask)))

(defun bactrian-cancel ()
  "Cancel the running request."
  (interactive)
  (let ((id (plist-get bactrian--proposal :id)))
    (unless (and id (eq (plist-get bactrian--proposal :state) 'asking))
      (user-error "No request is running"))
    (bactrian--request 'cancel (list :proposalId id) #'ignore)))

(defun bactrian--fail-in-flight ()
  "The connection went: a running proposal fails with a retryable message."
  (when (eq (plist-get bactrian--proposal :state) 'asking)
    (setq bactrian--proposal (plist-put bactrian--proposal :state 'failed))
    (bactrian--append
     "\n\n**interrupted:** the sidecar restarted while answering; the answer is lost. "
     "Ask again with `C-c , g` (M-x bactrian-retry).\n")))

(defun bactrian--notification (_conn method params)
  "Handle server notification METHOD with PARAMS."
  (pcase method
    ('aid/restarting (bactrian--restart-signal (plist-get params :retryAfterMs)))
    ('aid/progress
     (cond
      ((null bactrian--proposal))
      ((equal (plist-get params :proposalId) (plist-get bactrian--proposal :id))
       (bactrian--progress params))
      ;; the sidecar may stream before it answers `propose': keep until the id is known
      ((and (null (plist-get bactrian--proposal :id))
            (eq (plist-get bactrian--proposal :state) 'asking))
       (setq bactrian--proposal
             (plist-put bactrian--proposal :early
                        (cons params (plist-get bactrian--proposal :early)))))))))

(defun bactrian--progress (p)
  "Show progress P of the current proposal."
  (pcase (plist-get p :kind)
    ("context"
     (bactrian--append
      "_context: "
      (mapconcat (lambda (f) (format "%s (%s)" (plist-get f :path) (plist-get f :reason)))
                 (plist-get p :files) ", ")
      (format "; model %s_\n\n" (plist-get p :model))))
    ("token"
     (setq bactrian--proposal (plist-put bactrian--proposal :tokens
                                         (1+ (plist-get bactrian--proposal :tokens))))
     (bactrian--append (plist-get p :text)))
    ("final"
     (setq bactrian--proposal (plist-put (plist-put bactrian--proposal :final p) :state 'final))
     (let ((diff (plist-get p :diff)))
       (bactrian--append
        "\n\n"
        (if (string-empty-p diff)
            (format "_no change proposed%s_\n" (if-let ((e (plist-get p :error))) (concat ": " e) ""))
          (concat (format "_the change, checked by the sidecar (%s):_\n"
                          (if (eq (plist-get p :lenient) t) "applies leniently" "applies"))
                  "```diff\n" diff (if (string-suffix-p "\n" diff) "" "\n") "```\n"
                  "_C-c , p preview · C-c , y apply · C-c , k reject_\n")))))
    ("error"
     (setq bactrian--proposal (plist-put bactrian--proposal :state 'failed))
     (if (eql (plist-get p :code) -32001)
         (progn (bactrian--fail-in-flight) (bactrian--restart-signal nil))
       (bactrian--append "\n\n**error:** " (plist-get p :message) "\n")))
    ("cancelled"
     (setq bactrian--proposal (plist-put bactrian--proposal :state 'cancelled))
     (bactrian--append "\n\n_cancelled_\n"))))

;;;; Preview, apply, feedback

(defun bactrian--final ()
  "The current proposal's final result, or a user error."
  (or (plist-get bactrian--proposal :final)
      (user-error "No finished proposal (ask first, or wait for the answer)")))

(defun bactrian-preview ()
  "Show the proposal's diff, file by file, in a `diff-mode' buffer."
  (interactive)
  (let ((final (bactrian--final)))
    (with-current-buffer (get-buffer-create "*bactrian diff*")
      (let ((inhibit-read-only t))
        (erase-buffer)
        (seq-doseq (f (plist-get final :files))
          (insert (plist-get f :diff)))
        (diff-mode)
        (setq default-directory (file-name-as-directory bactrian--root))
        (goto-char (point-min)))
      (display-buffer (current-buffer)))))

(defun bactrian--file-buffer (path)
  "The buffer visiting workspace PATH, if any."
  (get-file-buffer (expand-file-name path bactrian--root)))

(defun bactrian-apply ()
  "Apply the proposal to its buffers; files not open are written.
Only a change of some text is reported as applied."
  (interactive)
  (let* ((final (bactrian--final))
         (id (plist-get bactrian--proposal :id))
         (bufs (vconcat
                (cl-loop for f across (plist-get final :files)
                         for b = (bactrian--file-buffer (plist-get f :path))
                         when b collect (list :path (plist-get f :path)
                                              :text (with-current-buffer b
                                                      (buffer-substring-no-properties
                                                       (point-min) (point-max))))))))
    (if (seq-empty-p (plist-get final :files))
        (bactrian--nothing-applied)
      (bactrian--request
       'apply (list :proposalId id :target "buffers" :buffers bufs)
       (lambda (r) (bactrian--apply-result r))
       (lambda (err)
         (bactrian--append "\n**apply failed:** " (plist-get err :message) "\n"))))))

(defun bactrian--nothing-applied ()
  "Say that nothing changed (never \"applied\"), and feed that back as rejected."
  (bactrian--append "\n_nothing applied: the proposal leaves every file as it is_\n")
  (bactrian--feedback "rejected" nil))

(defun bactrian--apply-result (result)
  "Put RESULT's new texts into buffers; report applied only if a text changed."
  (let (changed before)
    (seq-doseq (f (plist-get result :files))
      (let* ((path (plist-get f :path))
             (file (expand-file-name path bactrian--root))
             (open (bactrian--file-buffer path))
             (buf (or open (find-file-noselect file)))
             (new (or (plist-get f :newText) "")))
        (with-current-buffer buf
          (let ((old (buffer-substring-no-properties (point-min) (point-max))))
            (push (list path old (not open)) before)
            (if (equal (plist-get f :status) "deleted")
                (progn (when (file-exists-p file) (delete-file file))
                       (push path changed) (kill-buffer buf))
              (unless (equal old new)
                (let ((inhibit-read-only t))
                  (save-excursion (replace-region-contents (point-min) (point-max)
                                                           (lambda () new))))
                (push path changed)))
            (unless (or open (not (buffer-live-p buf)))
              (save-buffer)
              (kill-buffer buf))))))
    (setq bactrian--proposal (plist-put bactrian--proposal :before before))
    (if (not changed)
        (bactrian--nothing-applied)
      (setq bactrian--proposal (plist-put bactrian--proposal :applied (nreverse changed)))
      (bactrian--append
       (format "\n_applied to %s (%s); C-c , RET accept · C-c , k reject_\n"
               (string-join (plist-get bactrian--proposal :applied) ", ")
               (mapconcat (lambda (f)
                            (mapconcat (lambda (h) (plist-get h :rung)) (plist-get f :hunks) "/"))
                          (plist-get result :files) ", "))))))

(defun bactrian--feedback (outcome final-text &optional quiet)
  "Send OUTCOME (with FINAL-TEXT, a hash path→text) for the proposal, once.
Unless QUIET, the conversation shows when the sidecar recorded it."
  (let ((id (plist-get bactrian--proposal :id)))
    (when (and id (not (plist-get bactrian--proposal :feedback)))
      (setq bactrian--proposal (plist-put bactrian--proposal :feedback outcome))
      (bactrian--request 'feedback
                         (append (list :proposalId id :outcome outcome)
                                 (and final-text (list :finalText final-text)))
                         (lambda (_r)
                           (unless quiet
                             (bactrian--append (format "_feedback: %s_\n" outcome))))))))

(defun bactrian-accept ()
  "Accept the applied proposal (as `edited' with the final text if you changed it)."
  (interactive)
  (bactrian--final)
  (let ((applied (plist-get bactrian--proposal :applied))
        (files (plist-get (plist-get bactrian--proposal :final) :files))
        (edited (make-hash-table :test #'equal)))
    (unless applied (user-error "Apply the proposal first (C-c , y)"))
    (seq-doseq (f files)
      (when-let ((b (bactrian--file-buffer (plist-get f :path))))
        (let ((text (with-current-buffer b (buffer-substring-no-properties (point-min) (point-max)))))
          (unless (equal text (plist-get f :newText))
            (puthash (plist-get f :path) text edited)))))
    (if (> (hash-table-count edited) 0)
        (bactrian--feedback "edited" edited)
      (bactrian--feedback "accepted" nil))))

(defun bactrian-reject ()
  "Reject the proposal; an applied one is undone (the old texts come back)."
  (interactive)
  (bactrian--final)
  (dolist (entry (plist-get bactrian--proposal :before))
    (pcase-let ((`(,path ,old ,was-closed) entry))
      (let ((file (expand-file-name path bactrian--root)))
        (with-current-buffer (or (bactrian--file-buffer path) (find-file-noselect file))
          (let ((inhibit-read-only t))
            (replace-region-contents (point-min) (point-max) (lambda () old)))
          (when was-closed (save-buffer) (kill-buffer))))))
  (when (plist-get bactrian--proposal :applied)
    (setq bactrian--proposal (plist-put bactrian--proposal :applied nil))
    (bactrian--append "_reverted_\n"))
  (bactrian--feedback "rejected" nil))

(defun bactrian--abandon ()
  "A finished proposal left without a verdict is rejected.
Feedback is sent in every case."
  (when (and (eq (plist-get bactrian--proposal :state) 'final)
             (not (plist-get bactrian--proposal :feedback))
             bactrian--conn)
    (bactrian--feedback "rejected" nil t)))

(defun bactrian-status ()
  "Show the build status, model and experiment arm."
  (interactive)
  (bactrian--request
   'status (make-hash-table)
   (lambda (r)
     (let ((build (plist-get r :build)))
       (bactrian--say "build %s (%d diagnostics) · model %s · arm %s · server %s"
                      (or (plist-get build :status) "unknown")
                      (length (plist-get build :diagnostics))
                      (plist-get r :model) (plist-get r :arm) (plist-get r :serverVersion))))))

;;;; Modes

(defvar bactrian-command-map
  (let ((m (make-sparse-keymap)))
    (define-key m "a" #'bactrian-ask)
    (define-key m "w" #'bactrian-ask-workspace)
    (define-key m "g" #'bactrian-retry)
    (define-key m "p" #'bactrian-preview)
    (define-key m "y" #'bactrian-apply)
    (define-key m (kbd "RET") #'bactrian-accept)
    (define-key m "k" #'bactrian-reject)
    (define-key m "c" #'bactrian-cancel)
    (define-key m "s" #'bactrian-status)
    (define-key m "o" #'bactrian-show)
    m)
  "Keys of bactrian, under `bactrian-keymap-prefix' in `bactrian-mode'.")
(fset 'bactrian-command-map bactrian-command-map)

(defvar bactrian-mode-map (make-sparse-keymap) "Keymap of `bactrian-mode'.")

(defcustom bactrian-keymap-prefix "C-c ,"
  "Prefix key of `bactrian-command-map' in `bactrian-mode' (a `kbd' string)."
  :type 'string
  :set (lambda (sym val)
         (when (boundp sym) (define-key bactrian-mode-map (kbd (symbol-value sym)) nil))
         (set-default sym val)
         (define-key bactrian-mode-map (kbd val) 'bactrian-command-map)))

;;;###autoload
(define-minor-mode bactrian-mode
  "Ask the bactrian AID sidecar for changes.

\\{bactrian-mode-map}"
  :lighter (:eval (bactrian--lighter))
  :keymap bactrian-mode-map)

;;;###autoload
(define-globalized-minor-mode bactrian-global-mode bactrian-mode
  (lambda () (unless (minibufferp) (bactrian-mode 1))))

(defalias 'bactrian--conversation-parent-mode
  (if (require 'markdown-mode nil t) 'markdown-mode 'text-mode)
  "The conversation's parent mode: `markdown-mode' when installed.")

(defvar bactrian-conversation-mode-map
  (let ((m (make-sparse-keymap)))
    (define-key m (kbd "C-c C-c") #'bactrian-send-conversation)
    (define-key m (kbd "C-c C-a") #'bactrian-apply)
    (define-key m (kbd "C-c C-p") #'bactrian-preview)
    (define-key m (kbd "C-c C-y") #'bactrian-accept)
    (define-key m (kbd "C-c C-k") #'bactrian-reject)
    m)
  "Keymap of the conversation buffer.")

(define-derived-mode bactrian-conversation-mode bactrian--conversation-parent-mode "bactrian"
  "The bactrian conversation: type a prompt at the end, \\[bactrian-send-conversation].

\\{bactrian-conversation-mode-map}")

(defun bactrian-show ()
  "Show the conversation buffer."
  (interactive)
  (pop-to-buffer (bactrian--conversation)))

(provide 'bactrian)
;;; bactrian.el ends here
