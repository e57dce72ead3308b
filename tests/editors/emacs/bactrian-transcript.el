;;; bactrian-transcript.el --- Replay editors/transcript.json through bactrian.el  -*- lexical-binding: t; -*-

;;; Commentary:

;; The rules of editors/README.md, in Emacs Lisp: JSON is read the way jsonrpc.el reads it
;; (plists, vectors, nil for null), so expected and actual values compare directly.

;;; Code:

(require 'bactrian)
(require 'cl-lib)

(defun bactrian-transcript-read (file)
  "The transcript FILE as a plist."
  (with-temp-buffer
    (insert-file-contents file)
    (json-parse-buffer :object-type 'plist :null-object nil :false-object :json-false)))

(defun bactrian-transcript--ref (s)
  "The NAME of a \"${NAME}\" string S, or nil."
  (and (stringp s) (string-match "\\`\\${\\(.*\\)}\\'" s) (match-string 1 s)))

(defun bactrian-transcript--plistp (v)
  (and (consp v) (keywordp (car v))))

(defun bactrian-transcript--subst (v env texts)
  "V with ${NAME} and ${text:NAME} replaced from ENV (an alist) and TEXTS (a plist)."
  (let ((ref (bactrian-transcript--ref v)))
    (cond
     ((and ref (or (equal ref "any") (string-prefix-p "save:" ref))) v)
     ((and ref (string-prefix-p "text:" ref))
      (plist-get texts (intern (concat ":" (substring ref 5)))))
     (ref (or (cdr (assoc ref env)) (error "Unknown transcript value ${%s}" ref)))
     ((bactrian-transcript--plistp v)
      (cl-loop for (k x) on v by #'cddr
               append (list k (bactrian-transcript--subst x env texts))))
     ((vectorp v) (vconcat (mapcar (lambda (x) (bactrian-transcript--subst x env texts)) v)))
     (t v))))

(defun bactrian-transcript--match (expected actual env where)
  "Signal unless ACTUAL matches EXPECTED; saves into ENV (a cons cell holding an alist)."
  (let ((ref (bactrian-transcript--ref expected)))
    (cond
     ((equal ref "any"))
     ((and ref (string-prefix-p "save:" ref))
      (push (cons (substring ref 5) actual) (car env)))
     ((bactrian-transcript--plistp expected)
      (unless (or (bactrian-transcript--plistp actual) (null actual))
        (error "%s: expected an object, got %S" where actual))
      (cl-loop for (k x) on expected by #'cddr
               do (bactrian-transcript--match x (plist-get actual k) env
                                              (format "%s.%s" where (substring (symbol-name k) 1)))))
     ((vectorp expected)
      (unless (and (vectorp actual) (= (length actual) (length expected)))
        (error "%s: expected %d elements, got %S" where (length expected) actual))
      (cl-loop for e across expected for a across actual for i from 0
               do (bactrian-transcript--match e a env (format "%s[%d]" where i))))
     ((not (equal expected actual))
      (error "%s: expected %S, got %S" where expected actual)))))

(defvar bactrian-transcript--notes nil "aid/progress params seen, newest first.")

(defun bactrian-transcript--call (method params)
  "Send METHOD with PARAMS on bactrian.el's connection; return (result . error)."
  (let (done)
    (jsonrpc-async-request
     (bactrian-connect) (intern method) (or params (make-hash-table))
     :success-fn (lambda (r) (setq done (cons r nil)))
     :error-fn (lambda (e) (setq done (cons nil e))))
    (bactrian--wait (lambda () done) 20)
    (or done (error "%s: no answer" method))))

(defun bactrian-transcript--stream (id)
  "The aid/progress params of proposal ID, oldest first, once it has ended."
  (let ((ended (lambda ()
                 (cl-some (lambda (p) (and (equal (plist-get p :proposalId) id)
                                           (member (plist-get p :kind)
                                                   '("final" "error" "cancelled"))))
                          bactrian-transcript--notes))))
    (bactrian--wait ended 20)
    (unless (funcall ended) (error "Proposal %s did not end" id))
    (reverse (cl-remove-if-not (lambda (p) (equal (plist-get p :proposalId) id))
                               bactrian-transcript--notes))))

(defun bactrian-transcript-replay (file root)
  "Replay transcript FILE against the connected sidecar for workspace ROOT.
Returns the number of steps run; signals at the first mismatch."
  (let* ((data (bactrian-transcript-read file))
         (texts (plist-get data :texts))
         (env (list (list (cons "root" (directory-file-name root))
                          (cons "client" "bactrian.el"))))
         (n 0))
    (bactrian-disconnect)
    ;; a raw connection: the replay drives the protocol itself, including the steps
    ;; before `initialize' that bactrian-connect would do for it
    (setq bactrian--conn (bactrian--open (bactrian--socket))
          bactrian--state 'connected
          bactrian-transcript--notes nil)
    (advice-add 'bactrian--notification :before
                (lambda (_c method params)
                  (when (eq method 'aid/progress) (push params bactrian-transcript--notes)))
                '((name . bactrian-transcript)))
    (unwind-protect
        (seq-doseq (step (plist-get data :steps))
          (let* ((method (plist-get step :send))
                 (where (format "step %d (%s)" n method))
                 (answer (bactrian-transcript--call
                          method (bactrian-transcript--subst (plist-get step :params)
                                                             (car env) texts))))
            (if (plist-member step :error)
                (bactrian-transcript--match
                 (bactrian-transcript--subst (plist-get step :error) (car env) texts)
                 (cdr answer) env (concat where ".error"))
              (when (cdr answer) (error "%s: error %S" where (cdr answer)))
              (bactrian-transcript--match
               (bactrian-transcript--subst (plist-get step :result) (car env) texts)
               (car answer) env (concat where ".result")))
            (when-let ((spec (plist-get step :stream)))
              (let* ((spec (bactrian-transcript--subst spec (car env) texts))
                     (stream (bactrian-transcript--stream (plist-get spec :proposalId)))
                     (kinds (mapcar (lambda (p) (plist-get p :kind)) stream))
                     (text (mapconcat (lambda (p) (plist-get p :text))
                                      (cl-remove-if-not
                                       (lambda (p) (equal (plist-get p :kind) "token")) stream)
                                      "")))
                (unless (and (equal (car kinds) "context")
                             (equal (car (last kinds)) (or (plist-get spec :last) "final")))
                  (error "%s: stream kinds %S" where kinds))
                (bactrian-transcript--match (plist-get spec :context) (car stream) env
                                            (concat where ".context"))
                (when (plist-member spec :text)
                  (unless (equal text (plist-get spec :text))
                    (error "%s: streamed %S, expected %S" where text (plist-get spec :text))))
                (bactrian-transcript--match (plist-get spec :final) (car (last stream)) env
                                            (concat where ".final"))))
            (cl-incf n)))
      (advice-remove 'bactrian--notification 'bactrian-transcript)
      (bactrian-disconnect))
    n))

(provide 'bactrian-transcript)
;;; bactrian-transcript.el ends here
