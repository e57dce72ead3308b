;;; bactrian-test.el --- ERT tests of bactrian.el against a real sidecar  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by tests/editors/test_emacs.py: `emacs --batch' with BACTRIAN_TEST_SOCKET (a real
;; `bactrian aid serve' answering from the scripted backend of editors/transcript.json) and
;; BACTRIAN_TEST_ROOT (a copy of the sample workspace).

;;; Code:

(require 'ert)
(require 'bactrian)
(require 'bactrian-transcript)

(defvar bactrian-test-root (getenv "BACTRIAN_TEST_ROOT"))
(setq bactrian-socket (getenv "BACTRIAN_TEST_SOCKET")
      bactrian-workspace-root bactrian-test-root
      bactrian-start-server nil)

(defun bactrian-test--wait (pred what &optional seconds)
  "Wait for PRED (up to SECONDS, default 30); fail naming WHAT."
  (bactrian--wait pred (or seconds 30))
  (unless (funcall pred)
    (ert-fail (format "timed out waiting for %s; conversation:\n%s" what
                      (bactrian-test--conversation)))))

(defun bactrian-test--conversation ()
  (with-current-buffer (bactrian--conversation) (buffer-string)))

(defun bactrian-test--state () (plist-get bactrian--proposal :state))

(defvar bactrian-test--pristine
  (with-temp-buffer
    (insert-file-contents (expand-file-name "lib/money.ml" bactrian-test-root))
    (buffer-string))
  "lib/money.ml as the sample has it: every test starts from it.")

(defun bactrian-test--reset ()
  "Put lib/money.ml back as the sample has it, with no buffer visiting it.
The conversation starts afresh too."
  (when-let ((c (get-buffer bactrian-conversation-buffer))) (kill-buffer c))
  (let ((file (expand-file-name "lib/money.ml" bactrian-test-root)))
    (when-let ((b (get-file-buffer file)))
      (with-current-buffer b (set-buffer-modified-p nil)) (kill-buffer b))
    (with-temp-file file (insert bactrian-test--pristine))))

(defun bactrian-test--visit (path)
  "Visit workspace PATH afresh (from disk) and return its buffer."
  (bactrian-test--reset)
  (let ((file (expand-file-name path bactrian-test-root)))
    (when-let ((b (get-file-buffer file)))
      (with-current-buffer b (set-buffer-modified-p nil)) (kill-buffer b))
    (find-file file)))

(defun bactrian-test--ask (prompt)
  "Ask PROMPT about the current buffer and wait for the final answer."
  (bactrian-ask prompt 'buffer)
  (bactrian-test--wait (lambda () (memq (bactrian-test--state) '(final failed)))
                       "the final answer")
  (should (eq (bactrian-test--state) 'final)))

(defun bactrian-test--fed-back (outcome)
  (bactrian-test--wait
   (lambda () (string-match-p (regexp-quote (format "_feedback: %s_" outcome))
                              (bactrian-test--conversation)))
   (format "feedback %s to be recorded" outcome)))

(ert-deftest bactrian-ask-apply-accept ()
  "The answer streams in, the diff applies to the buffer, accept sends feedback."
  (with-current-buffer (bactrian-test--visit "lib/money.ml")
    (goto-char (point-min)) (forward-line 7)
    (bactrian-test--ask "add a double function")
    (let ((conv (bactrian-test--conversation)))
      (should (string-match-p "^## add a double function$" conv))
      (should (string-match-p "_context: lib/money.ml (current)" conv))
      (should (string-match-p "^```diff$" conv))
      (should (string-match-p "^\\+let double t = t \\* 2$" conv)))
    (should-not (string-match-p "let double" (buffer-string)))
    (bactrian-preview)
    (with-current-buffer "*bactrian diff*"
      (should (derived-mode-p 'diff-mode))
      (should (string-match-p "^diff --git a/lib/money.ml b/lib/money.ml$" (buffer-string)))
      (should (string-match-p "^\\+let double t = t \\* 2$" (buffer-string))))
    (bactrian-apply)
    (bactrian-test--wait (lambda () (plist-get bactrian--proposal :applied)) "the apply")
    (should (string-match-p "^let neg t = -t\nlet double t = t \\* 2\n" (buffer-string)))
    (should (buffer-modified-p))
    ;; nothing was written: the user saves
    (let ((file buffer-file-name))
      (should-not (string-match-p "let double"
                                  (with-temp-buffer
                                    (insert-file-contents file) (buffer-string)))))
    (should (string-match-p "_applied to lib/money.ml (exact)" (bactrian-test--conversation)))
    (bactrian-accept)
    (bactrian-test--fed-back "accepted")))

(ert-deftest bactrian-edited-then-accepted ()
  "An applied proposal the user edits before accepting is fed back as `edited'."
  (with-current-buffer (bactrian-test--visit "lib/money.ml")
    (bactrian-test--ask "add a double function")
    (bactrian-apply)
    (bactrian-test--wait (lambda () (plist-get bactrian--proposal :applied)) "the apply")
    (goto-char (point-max)) (insert "let triple t = t * 3\n")
    (bactrian-accept)
    (bactrian-test--fed-back "edited")))

(ert-deftest bactrian-reject-reverts ()
  "Rejecting an applied proposal puts the old text back and sends feedback."
  (with-current-buffer (bactrian-test--visit "lib/money.ml")
    (let ((before (buffer-string)))
      (bactrian-test--ask "add a double function")
      (bactrian-apply)
      (bactrian-test--wait (lambda () (plist-get bactrian--proposal :applied)) "the apply")
      (should-not (equal before (buffer-string)))
      (bactrian-reject)
      (should (equal before (buffer-string)))
      (bactrian-test--fed-back "rejected"))))

(ert-deftest bactrian-no-change-is-never-applied ()
  "A proposal that changes nothing is not reported as applied; feedback is still sent."
  (with-current-buffer (bactrian-test--visit "lib/money.ml")
    (let ((before (buffer-string)))
      (bactrian-test--ask "add zero if it is not already there")
      (should (string-match-p "_no change proposed" (bactrian-test--conversation)))
      (bactrian-apply)
      (bactrian-test--fed-back "rejected")
      (should (equal before (buffer-string)))
      (should-not (buffer-modified-p))
      (should-not (plist-get bactrian--proposal :applied))
      (should-not (string-match-p "_applied to" (bactrian-test--conversation))))))

(ert-deftest bactrian-apply-to-file-not-open ()
  "A file the diff touches that no buffer visits is written by apply."
  (let ((file (expand-file-name "lib/money.ml" bactrian-test-root)))
    (bactrian-test--reset)
    (with-temp-buffer
      (setq default-directory (file-name-as-directory bactrian-test-root))
      (bactrian-ask "add a double function" 'workspace)
      (bactrian-test--wait (lambda () (eq (bactrian-test--state) 'final)) "the final answer")
      (bactrian-apply)
      (bactrian-test--wait (lambda () (plist-get bactrian--proposal :applied)) "the apply"))
    (should (string-match-p "let double t = t \\* 2"
                            (with-temp-buffer (insert-file-contents file) (buffer-string))))
    (should-not (get-file-buffer file))
    (bactrian-reject)                   ; undoes it on disk too
    (should-not (string-match-p "let double"
                                (with-temp-buffer (insert-file-contents file) (buffer-string))))
    (bactrian-test--fed-back "rejected")))

(ert-deftest bactrian-append-to-the-conversation ()
  "A prompt typed at the end of the conversation is sent with C-c C-c."
  (with-current-buffer (bactrian-test--visit "lib/money.ml")
    (bactrian-test--ask "add zero if it is not already there"))
  (with-current-buffer (bactrian--conversation)
    (goto-char (point-max))
    (insert "add a double function")
    (should (eq (key-binding (kbd "C-c C-c")) #'bactrian-send-conversation))
    (call-interactively #'bactrian-send-conversation))
  (bactrian-test--wait (lambda () (eq (bactrian-test--state) 'final)) "the second answer")
  (let ((conv (bactrian-test--conversation)))
    (should (string-match-p "^## add a double function$" conv))
    (should (string-match-p "^\\+let double t = t \\* 2$" conv))
    ;; the typed prompt became the heading: it is not left behind as loose text
    (should (= 0 (with-temp-buffer (insert conv)
                                   (how-many "^add a double function$" (point-min) (point-max)))))))

(ert-deftest bactrian-ask-about-the-region ()
  "With an active region, the ask sends it as the selection (and no cursor)."
  (with-current-buffer (bactrian-test--visit "lib/money.ml")
    (transient-mark-mode 1)
    (goto-char (point-min)) (forward-line 7) (set-mark (point)) (forward-line 2)
    (activate-mark)
    (let (sent)
      (advice-add 'bactrian--propose :before (lambda (p _s) (setq sent p)) '((name . test-sel)))
      (unwind-protect (bactrian-ask "add a double function")
        (advice-remove 'bactrian--propose 'test-sel))
      (bactrian-test--wait (lambda () (eq (bactrian-test--state) 'final)) "the final answer")
      (should (equal (plist-get sent :selection)
                     '(:start (:line 7 :character 0) :end (:line 9 :character 0))))
      (should-not (plist-get sent :cursor))
      (should (equal (plist-get (plist-get sent :file) :path) "lib/money.ml")))))

(ert-deftest bactrian-cancel-running ()
  "A running request is cancelled."
  (with-current-buffer (bactrian-test--visit "lib/money.ml")
    (bactrian-ask "slow: add a double function" 'buffer)
    (bactrian-test--wait (lambda () (> (plist-get bactrian--proposal :tokens) 0)) "a token")
    (bactrian-cancel)
    (bactrian-test--wait (lambda () (eq (bactrian-test--state) 'cancelled)) "the cancel")
    (should (string-match-p "_cancelled_" (bactrian-test--conversation)))))

(ert-deftest bactrian-status-shows-arm ()
  "Status shows the build, model and arm."
  (bactrian-connect)
  (let (shown)
    (cl-letf (((symbol-function 'message) (lambda (fmt &rest args)
                                            (setq shown (apply #'format fmt args)))))
      (bactrian-status)
      (bactrian--wait (lambda () (and shown (string-match-p "arm" shown))) 5))
    (should (string-match-p "model scripted · arm default" shown))))

(ert-deftest bactrian-transcript ()
  "The shared transcript replays through bactrian.el's connection."
  (should (= (bactrian-transcript-replay (getenv "BACTRIAN_TEST_TRANSCRIPT") bactrian-test-root)
             (length (plist-get (bactrian-transcript-read (getenv "BACTRIAN_TEST_TRANSCRIPT"))
                                :steps)))))

(provide 'bactrian-test)
;;; bactrian-test.el ends here
