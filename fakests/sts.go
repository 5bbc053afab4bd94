package fakests

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

const stsXMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"

// answerTemplate is an answer body in both shapes, split around the request ID.
type answerTemplate struct {
	jsonPre, jsonPost []byte
	xmlPre, xmlPost   []byte
}

// callerIdentityAnswer precomputes p's GetCallerIdentity answer, in both shapes.
func callerIdentityAnswer(p *principal) answerTemplate {
	var t answerTemplate
	j := []byte(`{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":`)
	j = appendJSONString(j, p.account)
	j = append(j, `,"Arn":`...)
	j = appendJSONString(j, p.arn)
	j = append(j, `,"UserId":`...)
	j = appendJSONString(j, p.userID)
	t.jsonPre = append(j, `},"ResponseMetadata":{"RequestId":"`...)
	t.jsonPost = []byte(`"}}}`)

	x := []byte(`<GetCallerIdentityResponse xmlns="` + stsXMLNS + `">` + "\n  <GetCallerIdentityResult>\n    <Arn>")
	x = appendXMLText(x, p.arn)
	x = append(x, "</Arn>\n    <UserId>"...)
	x = appendXMLText(x, p.userID)
	x = append(x, "</UserId>\n    <Account>"...)
	x = appendXMLText(x, p.account)
	t.xmlPre = append(x, "</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>"...)
	t.xmlPost = []byte("</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n")
	return t
}

func appendJSONString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil {
		panic("BUG: cannot encode a string as JSON: " + err.Error())
	}
	return append(b, q...)
}

func appendXMLText(b []byte, s string) []byte {
	var buf bytes.Buffer
	_ = xml.EscapeText(&buf, []byte(s))
	return append(b, buf.Bytes()...)
}

// answer writes a 200 answer from a template: the one function that writes successes.
func (s *Server) answer(c *call, t *answerTemplate) {
	c.outcome = OutcomeOK
	ctx := c.ctx
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetBytesV("X-Amzn-Requestid", c.requestID[:])
	if c.json && !c.ec2 {
		ctx.SetContentType("application/json")
		ctx.Write(t.jsonPre)
		ctx.Write(c.requestID[:])
		ctx.Write(t.jsonPost)
		return
	}
	ctx.SetContentType("text/xml")
	ctx.Write(t.xmlPre)
	ctx.Write(c.requestID[:])
	ctx.Write(t.xmlPost)
}

// fail writes an AWS error answer in the shape of the service called: the one function that
// writes errors.
func (s *Server) fail(c *call, e *awsError) {
	ctx := c.ctx
	ctx.Response.Header.SetBytesV("X-Amzn-Requestid", c.requestID[:])
	if c.ec2 {
		code, status := e.ec2Code, e.ec2Status
		if code == "" {
			code, status = e.code, e.status
		}
		c.outcome = code
		ctx.SetStatusCode(status)
		ctx.SetContentType("text/xml;charset=UTF-8")
		b := append([]byte(nil), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>"...)
		b = appendXMLText(b, code)
		b = append(b, "</Code><Message>"...)
		b = appendXMLText(b, e.message)
		b = append(b, "</Message></Error></Errors><RequestID>"...)
		b = append(b, c.requestID[:]...)
		b = append(b, "</RequestID></Response>\n"...)
		ctx.SetBody(b)
		return
	}
	c.outcome = e.code
	ctx.SetStatusCode(e.status)
	kind := "Sender"
	if e.status >= 500 {
		kind = "Receiver"
	}
	if c.json {
		ctx.SetContentType("application/json")
		b := append([]byte(nil), `{"Error":{"Code":`...)
		b = appendJSONString(b, e.code)
		b = append(b, `,"Message":`...)
		b = appendJSONString(b, e.message)
		b = append(b, `,"Type":"`+kind+`"},"RequestId":"`...)
		b = append(b, c.requestID[:]...)
		ctx.SetBody(append(b, "\"}"...))
		return
	}
	ctx.SetContentType("text/xml")
	b := append([]byte(nil), `<ErrorResponse xmlns="`+stsXMLNS+`">`+"\n  <Error>\n    <Type>"+kind+"</Type>\n    <Code>"...)
	b = appendXMLText(b, e.code)
	b = append(b, "</Code>\n    <Message>"...)
	b = appendXMLText(b, e.message)
	b = append(b, "</Message>\n  </Error>\n  <RequestId>"...)
	b = append(b, c.requestID[:]...)
	ctx.SetBody(append(b, "</RequestId>\n</ErrorResponse>\n"...))
}

// checkSTSVersion answers InvalidAction unless the STS API version is 2011-06-15.
func (s *Server) checkSTSVersion(c *call) bool {
	if string(c.param("Version")) != "2011-06-15" {
		s.fail(c, errInvalidAction)
		return false
	}
	return true
}

func (s *Server) getCallerIdentity(c *call, p *principal) {
	if !s.checkSTSVersion(c) {
		return
	}
	s.answer(c, &p.callerIdentity)
}

// Alphabets of issued credentials.
const (
	keyAlphabet    = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

// assumeRole issues temporary credentials for a role the caller is trusted by.
func (s *Server) assumeRole(c *call, caller *principal) {
	if !s.checkSTSVersion(c) {
		return
	}
	roleARN := string(c.param("RoleArn"))
	if len(roleARN) < 20 {
		s.fail(c, errBadRoleARN)
		return
	}
	session := string(c.param("RoleSessionName"))
	if !validSessionName(session) {
		s.fail(c, errBadSessionName)
		return
	}
	role := s.store.role(roleARN)
	if role == nil || !role.trusts(caller) {
		s.fail(c, errAccessDenied)
		return
	}
	if role.ExternalID != "" && string(c.param("ExternalId")) != role.ExternalID {
		s.fail(c, errAccessDenied)
		return
	}
	duration := time.Hour
	maxDuration := role.maxDuration
	if caller.sessionToken != "" {
		maxDuration = time.Hour // role chaining is limited to one hour
	}
	if v := c.param("DurationSeconds"); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 900 || time.Duration(n)*time.Second > maxDuration {
			s.fail(c, errBadDuration)
			return
		}
		duration = time.Duration(n) * time.Second
	}
	now := s.now()
	assumedARN := "arn:" + role.partition + ":sts::" + role.account + ":assumed-role/" + role.name + "/" + session
	p, err := newPrincipal(assumedARN, role.RoleID+":"+session,
		"ASIA"+randomString(keyAlphabet, 16),
		randomString(secretAlphabet, 40),
		"IQoJb3JpZ2luX2VjEFAKE"+randomString(secretAlphabet, 300)+"==")
	if err != nil {
		s.fail(c, errInternal)
		return
	}
	p.expiration = now.Add(duration).Truncate(time.Second)
	p.issued = true
	if !s.store.putIssued(p, s.opts.MaxSessions, now) {
		s.fail(c, errTooManySessions)
		return
	}
	t := assumeRoleAnswer(p, role.RoleID+":"+session)
	s.answer(c, &t)
}

// assumeRoleAnswer renders the AssumeRole answers for issued credentials.
func assumeRoleAnswer(p *principal, assumedRoleID string) answerTemplate {
	var t answerTemplate
	j := []byte(`{"AssumeRoleResponse":{"AssumeRoleResult":{"AssumedRoleUser":{"Arn":`)
	j = appendJSONString(j, p.arn)
	j = append(j, `,"AssumedRoleId":`...)
	j = appendJSONString(j, assumedRoleID)
	j = append(j, `},"Credentials":{"AccessKeyId":`...)
	j = appendJSONString(j, p.accessKeyID)
	j = append(j, `,"Expiration":`...)
	j = strconv.AppendInt(j, p.expiration.Unix(), 10)
	j = append(j, `,"SecretAccessKey":`...)
	j = appendJSONString(j, p.secret)
	j = append(j, `,"SessionToken":`...)
	j = appendJSONString(j, p.sessionToken)
	t.jsonPre = append(j, `},"PackedPolicySize":null,"SourceIdentity":null},"ResponseMetadata":{"RequestId":"`...)
	t.jsonPost = []byte(`"}}}`)

	x := []byte(`<AssumeRoleResponse xmlns="` + stsXMLNS + `">` + "\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n      <AssumedRoleId>")
	x = appendXMLText(x, assumedRoleID)
	x = append(x, "</AssumedRoleId>\n      <Arn>"...)
	x = appendXMLText(x, p.arn)
	x = append(x, "</Arn>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>"...)
	x = appendXMLText(x, p.accessKeyID)
	x = append(x, "</AccessKeyId>\n      <SecretAccessKey>"...)
	x = appendXMLText(x, p.secret)
	x = append(x, "</SecretAccessKey>\n      <SessionToken>"...)
	x = appendXMLText(x, p.sessionToken)
	x = append(x, "</SessionToken>\n      <Expiration>"...)
	x = p.expiration.UTC().AppendFormat(x, "2006-01-02T15:04:05Z")
	t.xmlPre = append(x, "</Expiration>\n    </Credentials>\n  </AssumeRoleResult>\n  <ResponseMetadata>\n    <RequestId>"...)
	t.xmlPost = []byte("</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n")
	return t
}

// validSessionName is AWS's [\w+=,.@-]{2,64}.
func validSessionName(s string) bool {
	if len(s) < 2 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_+=,.@-", c) >= 0) {
			return false
		}
	}
	return true
}
