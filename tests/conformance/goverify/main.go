// goverify: Go's crypto/x509 as a judge of what the CA emits (stdlib only).
//
// Usage: goverify -roots ROOTS.pem -intermediates INTER.pem -leaf LEAF.pem [-eku serverAuth,clientAuth,emailProtection] [-dns NAME]
//
// It prints one JSON object with a verdict per extended key usage asked for, e.g.
// {"serverAuth": {"ok": true, "chains": 1}, "emailProtection": {"ok": false, "error": "..."}}:
// x509.Verify runs once per usage, because VerifyOptions.KeyUsages accepts a chain that allows
// *any* of its values (and Go checks the usage against every certificate of the chain). The exit
// status is 0 whatever the verdicts (2 for bad arguments or unreadable files).
package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"strings"
)

var usages = map[string]x509.ExtKeyUsage{
	"serverAuth":      x509.ExtKeyUsageServerAuth,
	"clientAuth":      x509.ExtKeyUsageClientAuth,
	"emailProtection": x509.ExtKeyUsageEmailProtection,
	"any":             x509.ExtKeyUsageAny,
}

type verdict struct {
	OK     bool   `json:"ok"`
	Chains int    `json:"chains,omitempty"`
	Error  string `json:"error,omitempty"`
}

func certificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var found []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		certificate, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		found = append(found, certificate)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return found, nil
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(2)
}

func main() {
	rootsPath := flag.String("roots", "", "trusted roots (PEM)")
	intermediatesPath := flag.String("intermediates", "", "intermediates (PEM), optional")
	leafPath := flag.String("leaf", "", "the certificate to verify (PEM)")
	ekus := flag.String("eku", "any", "comma-separated: serverAuth, clientAuth, emailProtection, any")
	dnsName := flag.String("dns", "", "a DNS name or IP address the leaf must be valid for")
	flag.Parse()
	if *rootsPath == "" || *leafPath == "" {
		fail("goverify: -roots and -leaf are required")
	}
	options := x509.VerifyOptions{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), DNSName: *dnsName}
	roots, err := certificates(*rootsPath)
	if err != nil {
		fail(err.Error())
	}
	for _, root := range roots {
		options.Roots.AddCert(root)
	}
	if *intermediatesPath != "" {
		intermediates, err := certificates(*intermediatesPath)
		if err != nil {
			fail(err.Error())
		}
		for _, intermediate := range intermediates {
			options.Intermediates.AddCert(intermediate)
		}
	}
	leaves, err := certificates(*leafPath)
	if err != nil {
		fail(err.Error())
	}
	results := map[string]verdict{}
	for _, name := range strings.Split(*ekus, ",") {
		usage, known := usages[name]
		if !known {
			fail("goverify: unknown usage " + name)
		}
		options.KeyUsages = []x509.ExtKeyUsage{usage}
		result := verdict{}
		chains, err := leaves[0].Verify(options)
		if err != nil {
			result.Error = err.Error()
		} else {
			result.OK, result.Chains = true, len(chains)
		}
		results[name] = result
	}
	encoded, _ := json.Marshal(results)
	fmt.Println(string(encoded))
}
