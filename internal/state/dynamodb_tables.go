package state

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// tableNamePattern is DynamoDB's rule for table names.
var tableNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

// tableSpec is one of the store's tables and the key schema chimport needs:
// hash key ListId (S) in all three, and a range key.
type tableSpec struct {
	purpose   string // "history", "failures", "runs"
	name      string
	rangeKey  string // "" for none
	rangeType types.ScalarAttributeType
}

func (c DynamoDBConfig) tables() []tableSpec {
	return []tableSpec{
		{purpose: "history", name: c.HistoryTable},
		{purpose: "failures", name: c.FailuresTable, rangeKey: attrFailureKey, rangeType: types.ScalarAttributeTypeN},
		{purpose: "runs", name: c.RunsTable, rangeKey: attrRunID, rangeType: types.ScalarAttributeTypeS},
	}
}

// keySchema describes t's keys the way errors show them, from t's spec
// (want) or from a table's description (got).
func (t tableSpec) keySchema() string {
	s := attrListID + " (hash, S)"
	if t.rangeKey != "" {
		s += fmt.Sprintf(", %s (range, %s)", t.rangeKey, t.rangeType)
	}
	return s
}

func describedKeySchema(d *types.TableDescription) string {
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, a := range d.AttributeDefinitions {
		attrTypes[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	var s string
	for i, k := range d.KeySchema {
		if i > 0 {
			s += ", "
		}
		name := aws.ToString(k.AttributeName)
		kind := "hash"
		if k.KeyType == types.KeyTypeRange {
			kind = "range"
		}
		s += fmt.Sprintf("%s (%s, %s)", name, kind, attrTypes[name])
	}
	return s
}

// describe returns t's description, or an error that says to run `chimport
// init` when it is missing, or that its keys are not the ones chimport
// needs (an existing table of the same name, made for something else).
func (s *DynamoDB) describe(ctx context.Context, t tableSpec) (*types.TableDescription, error) {
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.name})
	if err != nil {
		return nil, s.opError("open "+t.purpose+" table", "", t.name, err)
	}
	if got, want := describedKeySchema(out.Table), t.keySchema(); got != want {
		return nil, fmt.Errorf("state: dynamodb: %s table %q has the keys %s; chimport needs %s",
			t.purpose, t.name, got, want)
	}
	return out.Table, nil
}

// tableWait bounds how long Init waits for a new table to become ACTIVE
// (seconds, on DynamoDB).
const tableWait = 5 * time.Minute

// initDynamoDB creates the tables that are missing, on-demand billed (a
// sync touches each connection's items a few times an hour: provisioned
// capacity would sit idle), and waits until every table is ACTIVE.
func initDynamoDB(ctx context.Context, cfg DynamoDBConfig) (InitReport, error) {
	client, cfg, err := dynamoDBClient(ctx, cfg)
	if err != nil {
		return InitReport{}, err
	}
	s := &DynamoDB{client: client, cfg: cfg}
	var report InitReport
	for _, t := range cfg.tables() {
		label := "DynamoDB table " + t.name
		_, err := s.describe(ctx, t)
		if err == nil {
			report.Existing = append(report.Existing, label)
			continue
		}
		if !errors.Is(err, ErrNotInitialized) {
			return report, err
		}
		created, err := s.createTable(ctx, t)
		if err != nil {
			return report, err
		}
		if created {
			report.Created = append(report.Created, label)
		} else {
			report.Existing = append(report.Existing, label)
		}
	}
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = time.Second, 10*time.Second
	})
	for _, t := range cfg.tables() {
		if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: &t.name}, tableWait); err != nil {
			return report, fmt.Errorf("state: dynamodb: wait for table %q to become active: %w", t.name, err)
		}
	}
	return report, nil
}

// createTable creates t; created is false when another process created it
// first (ResourceInUseException), which is as good.
func (s *DynamoDB) createTable(ctx context.Context, t tableSpec) (created bool, err error) {
	in := &dynamodb.CreateTableInput{
		TableName:   &t.name,
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrListID), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(attrListID), KeyType: types.KeyTypeHash}},
	}
	if t.rangeKey != "" {
		in.AttributeDefinitions = append(in.AttributeDefinitions,
			types.AttributeDefinition{AttributeName: &t.rangeKey, AttributeType: t.rangeType})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: &t.rangeKey, KeyType: types.KeyTypeRange})
	}
	_, err = s.client.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	if errors.As(err, &inUse) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: dynamodb: create table %q (region %s): %w", t.name, s.cfg.Region, err)
	}
	return true, nil
}

// dueForTrim reports whether the append counter attr, as an update just
// left it, has reached a multiple of trimEvery. Exactly one of several
// concurrent appends sees each multiple, so trims do not pile up, and
// each costs one key-only query of about keep+trimEvery keys.
func (s *DynamoDB) dueForTrim(updated map[string]types.AttributeValue, attr string) bool {
	n, ok := updated[attr].(*types.AttributeValueMemberN)
	if !ok {
		return false
	}
	count, err := strconv.ParseInt(n.Value, 10, 64)
	return err == nil && count > 0 && count%int64(s.trimEvery) == 0
}

// trim deletes all but the newest keep items of connection name from table,
// newest by range key.
func (s *DynamoDB) trim(ctx context.Context, table, rangeKey, name string, keep int) error {
	keys, err := s.keys(ctx, &dynamodb.QueryInput{
		TableName:                 &table,
		KeyConditionExpression:    aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": attrListID, "#key": rangeKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(name)},
		ProjectionExpression:      aws.String("#id, #key"),
		ScanIndexForward:          aws.Bool(false),
	})
	if err != nil || len(keys) <= keep {
		return err
	}
	return s.deleteKeys(ctx, table, keys[keep:])
}

// keys returns every item a query finds.
func (s *DynamoDB) keys(ctx context.Context, in *dynamodb.QueryInput) ([]map[string]types.AttributeValue, error) {
	var out []map[string]types.AttributeValue
	pages := dynamodb.NewQueryPaginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
	}
	return out, nil
}

// deleteKeys deletes items in batches of 25 (BatchWriteItem's limit),
// resending what DynamoDB leaves unprocessed under load, with backoff.
func (s *DynamoDB) deleteKeys(ctx context.Context, table string, keys []map[string]types.AttributeValue) error {
	for len(keys) > 0 {
		n := min(len(keys), 25)
		var batch []types.WriteRequest
		for _, k := range keys[:n] {
			batch = append(batch, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}})
		}
		keys = keys[n:]
		for attempt := 0; len(batch) > 0; attempt++ {
			if attempt == 8 {
				return fmt.Errorf("delete from %q: %d items still unprocessed after %d attempts", table, len(batch), attempt)
			}
			if attempt > 0 {
				select {
				case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			out, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{table: batch},
			})
			if err != nil {
				return err
			}
			batch = out.UnprocessedItems[table]
		}
	}
	return nil
}
