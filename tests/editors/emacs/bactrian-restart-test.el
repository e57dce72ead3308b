;;; bactrian-restart-test.el --- The sidecar restarts mid-answer  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by tests/editors/test_restart.py, which kills the sidecar (SIGKILL) and starts a new
;; one on the same socket once this test writes $BACTRIAN_TEST_SYNC/streaming.

;;; Code:

(require 'bactrian-test)

(ert-deftest bactrian-survives-a-restart ()
  "The in-flight answer fails with a retryable message, the client reconnects by itself,
says so once, and the next ask succeeds: no editor restart."
  (let ((sync (getenv "BACTRIAN_TEST_SYNC"))
        first-server)
    (with-current-buffer (bactrian-test--visit "lib/money.ml")
      (bactrian-ask "slow: add a double function" 'buffer)
      (setq first-server (plist-get bactrian--server :serverId))
      (bactrian-test--wait (lambda () (> (plist-get bactrian--proposal :tokens) 0)) "a token")
      (write-region "" nil (expand-file-name "streaming" sync))
      (bactrian-test--wait (lambda () (eq (bactrian-test--state) 'failed))
                           "the in-flight request to fail" 30)
      (should (string-match-p "\\*\\*interrupted:\\*\\* the sidecar restarted while answering"
                              (bactrian-test--conversation)))
      (should (string-match-p "bactrian-retry" (bactrian-test--conversation)))
      (bactrian-test--wait (lambda () (eq bactrian--state 'connected)) "the reconnect" 30)
      (should-not (equal first-server (plist-get bactrian--server :serverId)))
      (bactrian-test--ask "add a double function")
      (bactrian-apply)
      (bactrian-test--wait (lambda () (plist-get bactrian--proposal :applied)) "the apply")
      (should (string-match-p "let double t = t \\* 2" (buffer-string)))
      (bactrian-accept)
      (bactrian-test--fed-back "accepted")
      (with-current-buffer "*Messages*"
        (should (= 1 (how-many "reconnected to bactrian aid" (point-min) (point-max))))))))

(defun bactrian-test--sync (name)
  "Wait until the driving test has written sync file NAME."
  (let ((file (expand-file-name name (getenv "BACTRIAN_TEST_SYNC"))))
    (bactrian-test--wait (lambda () (file-exists-p file)) (concat "the sync file " name) 60)))

(ert-deftest bactrian-feedback-survives-a-restart ()
  "Feedback in flight when the sidecar dies is sent again to the new one (rule 3)."
  (let ((sync (getenv "BACTRIAN_TEST_SYNC")))
    (with-current-buffer (bactrian-test--visit "lib/money.ml")
      (bactrian-test--ask "add a double function")
      (bactrian-apply)
      (bactrian-test--wait (lambda () (plist-get bactrian--proposal :applied)) "the apply")
      (write-region "" nil (expand-file-name "applied" sync))
      (bactrian-test--sync "frozen")      ; the sidecar is stopped (SIGSTOP): no answer comes
      (bactrian-accept)
      (bactrian--wait #'ignore 0.3)        ; the request is on the wire
      (write-region "" nil (expand-file-name "sent" sync))
      (bactrian-test--fed-back "accepted")
      (should (eq bactrian--state 'connected))
      (should-not bactrian--resend))))

(provide 'bactrian-restart-test)
;;; bactrian-restart-test.el ends here
